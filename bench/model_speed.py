"""Forward+backward time and peak memory per training step: DeepH-2 (SO(2) bond-frame convolution) vs the
DeepH-E3-style baseline (full e3nn tensor products), at several feature degrees Lmax, on the same batch.

    OMP_NUM_THREADS=2 python bench/model_speed.py                       # CPU, default sizes
    python bench/model_speed.py --device cuda --supercell 3 --channels 64
    OMP_NUM_THREADS=1 python bench/model_speed.py --readout [--f-shells]   # padded vs compact readout, C/Si/Fe

Each configuration runs in a fresh subprocess; time is the fastest of --repeats steps (the machine is shared).
Memory: on CUDA the peak allocated during a step; on CPU the tensors autograd saves for the backward pass
(unique storages), which is what dominates a step's peak.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time



def _measure(cfg: dict) -> dict:
    import torch
    from ase.build import bulk
    from torch_geometric.data import Batch

    from data_prep.basis import BasisTable
    from data_prep.torch_data import structure_to_data
    from deeph_lightning.models import build_model

    torch.manual_seed(0)
    basis = BasisTable.from_mapping({14: [0, 0, 1, 1], 6: [0, 0, 1, 1]})  # s, p shells: blocks need l <= 2
    atoms = bulk("Si", "diamond", a=5.43).repeat(cfg["supercell"])
    atoms.numbers[::4] = 6
    atoms.rattle(0.05, seed=0)
    data = structure_to_data(atoms.numbers, atoms.positions, atoms.cell[:], [True] * 3, cfg["cutoff"], basis)
    batch = Batch.from_data_list([data] * cfg["structures"]).to(cfg["device"])
    t0 = time.perf_counter()
    model = build_model(cfg["name"], basis.to_dict(), cfg["cutoff"], preset="deeph2_small", lmax=cfg["lmax"],
                        mmax=cfg["mmax"], channels=cfg["channels"], pseudo_channels=cfg["channels"] // 2,
                        layers=cfg["layers"]).to(cfg["device"])
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    cuda = cfg["device"].startswith("cuda")

    def step():
        model.zero_grad(set_to_none=True)
        out = model(batch)
        (out["h_node"].square().mean() + out["h_edge"].square().mean()).backward()
        if cuda:
            torch.cuda.synchronize()

    step()  # warm-up (allocator, e3nn code generation)
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    saved_mib = sum(saved.values()) / 2**20
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    mem = torch.cuda.max_memory_allocated() / 2**20 if cuda else saved_mib
    return dict(cfg, params=params, build_s=build_s, step_s=min(times), mem_mib=mem,
                atoms=int(batch.num_nodes), edges=int(batch.edge_index.shape[1]))


def _readout_batch(cfg: dict):
    """Si diamond supercell with C and Fe substituted; union basis {s, s, p, d} (Fe) of which C and Si
    have s, p: the default basis's padding for the light elements. ``f_shells``: Gd {s, s, p, p, d, f} too."""
    from ase.build import bulk
    from torch_geometric.data import Batch

    from data_prep.basis import BasisTable
    from data_prep.torch_data import structure_to_data

    shells = {6: [0, 1], 14: [0, 1], 26: [0, 0, 1, 2]} | ({64: [0, 0, 1, 1, 2, 3]} if cfg["f_shells"] else {})
    basis = BasisTable.from_mapping(shells)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(cfg["supercell"])
    atoms.numbers[::4] = 6
    atoms.numbers[1::8] = 26
    if cfg["f_shells"]:
        atoms.numbers[3::8] = 64
    atoms.rattle(0.05, seed=0)
    data = structure_to_data(atoms.numbers, atoms.positions, atoms.cell[:], [True] * 3, cfg["cutoff"], basis)
    return basis, Batch.from_data_list([data] * cfg["structures"]).to(cfg["device"])


def _measure_readout(cfg: dict) -> dict:
    """Padded vs compact readout on the same weights and batch, repeats interleaved (shared machine): the
    whole training step (forward, MSE loss, backward), the block heads with the loss (readout, symmetrisation,
    mask, MSE; forward+backward from fixed readout features), and the edge readout alone."""
    import torch

    from deeph_lightning.models import build_model, losses
    from deeph_lightning.models.common import GraphInputs

    torch.manual_seed(0)
    basis, batch = _readout_batch(cfg)
    cuda = cfg["device"].startswith("cuda")
    nets = {}
    for readout in ("padded", "compact"):
        torch.manual_seed(0)
        nets[readout] = build_model("deeph2", basis.to_dict(), cfg["cutoff"], preset=cfg["preset"],
                                    lmax=2 * basis.lmax, readout=readout).to(cfg["device"])
    nets["compact"].load_state_dict(nets["padded"].state_dict())
    # the loss needs targets: any blocks in the batch's layout will do
    batch.h_node = torch.randn(batch.num_nodes, basis.n_union, basis.n_union, device=cfg["device"])
    batch.h_edge = torch.randn(batch.edge_index.shape[1], basis.n_union, basis.n_union, device=cfg["device"])
    g = GraphInputs.from_batch(batch, cfg["cutoff"])
    R, K = nets["padded"].heads.channels, (nets["padded"].lmax + 1) ** 2
    node_f = torch.randn(batch.num_nodes, K, R, device=cfg["device"], requires_grad=True)
    edge_f = torch.randn(batch.edge_index.shape[1], K, R, device=cfg["device"], requires_grad=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step(net):
        net.zero_grad(set_to_none=True)
        losses.mse_loss(net(batch), batch, basis).backward()
        sync()

    def heads(net):
        out = net.heads(node_f, edge_f, g)
        losses.mse_loss(out, batch, basis).backward()
        sync()

    i, j = batch.edge_index
    weight = torch.randn(len(i), basis.n_union, basis.n_union, device=cfg["device"])

    def readout(net):
        (net.heads.readout(edge_f, g.z[i], g.z[j]) * weight).sum().backward()
        sync()

    def saved_mib(fn, net):
        saved: dict[int, int] = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(net)
        return sum(saved.values()) / 2**20

    row = dict(cfg, atoms=int(batch.num_nodes), edges=int(batch.edge_index.shape[1]))
    for what, fn in (("step", step), ("heads", heads), ("readout", readout)):
        for net in nets.values():
            fn(net)  # warm-up
        times = {r: [] for r in nets}
        for k in range(cfg["repeats"]):
            for r, net in list(nets.items())[:: 1 if k % 2 else -1]:  # alternate who goes first
                t = time.perf_counter()
                fn(net)
                times[r].append(time.perf_counter() - t)
        for r, net in nets.items():
            row[f"{what}_{r}_s"] = min(times[r])
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                fn(net)
                row[f"{what}_{r}_mib"] = torch.cuda.max_memory_allocated() / 2**20
            else:
                row[f"{what}_{r}_mib"] = saved_mib(fn, net)
    return row


def readout_table_rows(rows: list[dict]) -> None:
    r = rows[0]
    mem = "CUDA peak" if r["device"].startswith("cuda") else "saved for backward"
    union = "s,s,p,p,d,f (M = 20), lmax 6" if r["f_shells"] else "s,s,p,d (M = 10), lmax 4"
    print(f"\nbatch: {r['structures']} x Si/C/Fe{'/Gd' * r['f_shells']} diamond {r['supercell']}^3 cubic cell: "
          f"{r['atoms']} atoms, {r['edges']} edges, union basis {union}; preset {r['preset']}, device {r['device']}, "
          f"fastest of {r['repeats']} interleaved repeats; memory = {mem}")
    head = (f"{'what':<22}{'padded s':>11}{'compact s':>11}{'time ratio':>12}{'padded MiB':>12}{'compact MiB':>13}"
            f"{'mem ratio':>11}")
    print(head)
    print("-" * len(head))
    for what, name in (("step", "train step (fwd+bwd)"), ("heads", "heads + loss only"), ("readout", "edge readout only")):
        for r in rows:
            tp, tc = r[f"{what}_padded_s"], r[f"{what}_compact_s"]
            mp_, mc = r[f"{what}_padded_mib"], r[f"{what}_compact_mib"]
            print(f"{name:<22}{tp:>11.4f}{tc:>11.4f}{tc / tp:>12.2f}{mp_:>12.2f}{mc:>13.2f}{mc / mp_:>11.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--channels", type=int, default=32, help="natural channels (pseudo = half)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--supercell", type=int, default=2, help="Si/C diamond supercell repeat (8·n³ atoms)")
    ap.add_argument("--structures", type=int, default=1)
    ap.add_argument("--cutoff", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["deeph2", "deeph_e3"])
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--readout", action="store_true",
                    help="instead: padded vs compact readout (DeepH-2, --preset, Si/C/Fe batch of --supercell cubic cells)")
    ap.add_argument("--preset", default="deeph2_small", help="model preset of the --readout comparison")
    ap.add_argument("--f-shells", action="store_true", help="--readout: Gd with an f shell in the batch too")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    if args.readout:
        cfg = dict(preset=args.preset, f_shells=args.f_shells, supercell=args.supercell, structures=args.structures,
                   cutoff=args.cutoff, repeats=args.repeats, device=args.device)
        with ctx.Pool(1) as pool:
            rows = [pool.apply(_measure_readout, (cfg,))]
        readout_table_rows(rows)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return

    configs = []
    for lmax in args.lmax:
        for name, mmax in dict.fromkeys((("deeph2", lmax), ("deeph2", min(2, lmax)), ("deeph_e3", lmax))):
            if name not in args.models:
                continue
            configs.append(dict(name=name, lmax=lmax, mmax=mmax, channels=args.channels, layers=args.layers,
                                supercell=args.supercell, structures=args.structures, cutoff=args.cutoff,
                                repeats=args.repeats, device=args.device))
    rows = []
    for cfg in configs:
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(_measure, (cfg,)))
        r = rows[-1]
        print(f"done {r['name']} L={r['lmax']} m={r['mmax']}: {r['step_s']:.3f} s", flush=True)

    r0 = rows[0]
    print(f"\nbatch: {r0['atoms']} atoms, {r0['edges']} edges; channels {args.channels}+{args.channels // 2} "
          f"(natural+pseudo), {args.layers} layers, device {args.device}")
    head = f"{'model':<10}{'Lmax':>5}{'mmax':>5}{'params':>11}{'step (s)':>10}{'mem MiB':>10}{'vs e3':>8}{'build s':>9}"
    print(head)
    print("-" * len(head))
    base = {r["lmax"]: r["step_s"] for r in rows if r["name"] == "deeph_e3"}
    for r in rows:
        speed = f"{base[r['lmax']] / r['step_s']:>7.1f}x" if r["lmax"] in base else f"{'-':>8}"
        print(f"{r['name']:<10}{r['lmax']:>5}{r['mmax'] if r['name'] == 'deeph2' else '-':>5}{r['params']:>11,}"
              f"{r['step_s']:>10.3f}{r['mem_mib']:>10.0f}{speed}{r['build_s']:>9.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
