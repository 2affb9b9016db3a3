"""Forward+backward time and peak memory per training step: DeepH-2 (SO(2) bond-frame convolution) vs the
DeepH-E3-style baseline (full e3nn tensor products), at several feature degrees Lmax, on the same batch.

    OMP_NUM_THREADS=2 python bench/model_speed.py                       # CPU, default sizes
    python bench/model_speed.py --device cuda --supercell 3 --channels 64

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
    args = ap.parse_args()

    configs = []
    for lmax in args.lmax:
        for name, mmax in dict.fromkeys((("deeph2", lmax), ("deeph2", min(2, lmax)), ("deeph_e3", lmax))):
            if name not in args.models:
                continue
            configs.append(dict(name=name, lmax=lmax, mmax=mmax, channels=args.channels, layers=args.layers,
                                supercell=args.supercell, structures=args.structures, cutoff=args.cutoff,
                                repeats=args.repeats, device=args.device))
    ctx = mp.get_context("spawn")
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
