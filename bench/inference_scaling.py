"""Inference scaling: predict H with a trained model on n×n×n Si supercells, then the bands nearest E_F.

Timed path per size (each in its own process): ``deeph_eval.predict.predict_blocks`` on the whole
supercell (float64 inference, as deeph-eval runs it), sparse H(Γ)/S(Γ), and the --n-bands levels nearest
E_F by shift-invert with one sparse LDLᴴ (``deeph_eval.eigen.sparse_levels_near``). S(R): the primitive
cell's exact DFT overlaps (PySCF, SZV-MOLOPT-SR-GTH, within --radius Å) tiled onto the supercell (exact for a
perfect crystal). E_F: mid-gap of the same model's primitive-cell bands (dense, 6×6×6 mesh).
Peak MiB = peak RSS during predict+solve (VmHWM reset after imports; includes SuperLU's C allocations)
minus the RSS after imports. Prints one row per size and the fitted exponents t ∝ N^a, mem ∝ N^b.
Without --ckpt, the DFT H(R) is tiled instead of predicted (the solver alone).

    python bench/inference_scaling.py --ckpt CKPT [--max-seconds 120] [--radius 6.0] [--n-bands 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = [2, 3, 4, 6, 8, 10, 12, 14, 17]  # 16 ... 9826 atoms


def primitive(cache: Path, radius: float):
    if not cache.exists():
        from ase.build import bulk

        from data_prep.dft import DFTSettings, run_dft

        res = run_dft(bulk("Si", "diamond", a=5.43), DFTSettings(kmesh=(3, 3, 3), ke_cutoff=40, smearing=0.0, radius=radius))
        st = res.structure
        from deeph_eval.blocklist import BlockList

        h = BlockList.from_blocks(st.hamiltonians, st.n_orbitals())
        s = BlockList.from_blocks(st.overlaps, st.n_orbitals())
        from deeph_eval.eigen import dense_eigvals
        from deeph_eval.kpath import uniform_mesh

        mesh, _ = uniform_mesh([6, 6, 6])
        e = dense_eigvals(st.hamiltonians, st.overlaps, st.n_orbitals(), mesh)
        midgap = 0.5 * (e[:, 3].max() + e[:, 4].min())  # 8 electrons: 4 occupied bands
        np.savez(cache, n_orb=h.n_orb, i=h.i, j=h.j, shift=h.shift, h=h.values, s=s.values, s_i=s.i, s_j=s.j,
                 s_shift=s.shift, midgap=midgap)
    return np.load(cache)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> float:
    """Reset the high-water mark (Linux: write 5 to clear_refs) and return the current RSS, MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def model_midgap(loaded, d) -> float:
    """Mid-gap of the model's own primitive-cell bands (8 electrons: 4 occupied bands)."""
    from ase.build import bulk

    from deeph_eval.blocklist import BlockList
    from deeph_eval.eigen import dense_eigvals
    from deeph_eval.kpath import uniform_mesh
    from deeph_eval.predict import predict_blocks

    si = bulk("Si", "diamond", a=5.43)
    h = predict_blocks(loaded, si)
    s = BlockList(d["n_orb"], d["s_i"], d["s_j"], d["s_shift"], d["s"]).to_blocks()
    e = dense_eigvals(h, s, d["n_orb"], uniform_mesh([6, 6, 6])[0])
    return float(0.5 * (e[:, 3].max() + e[:, 4].min()))


def one_size(n: int, cache: Path, n_bands: int, ckpt: str | None) -> dict:
    from deeph_eval.blocklist import BlockList, supercell_blocks, supercell_geometry
    from deeph_eval.eigen import sparse_levels_near
    from deeph_eval.sparse_bloch import SparseBloch

    d = np.load(cache)
    s = BlockList(d["n_orb"], d["s_i"], d["s_j"], d["s_shift"], d["s"])
    centre = float(d["midgap"])
    if ckpt:
        from ase import Atoms
        from ase.build import bulk

        from deeph_eval.model_io import load_checkpoint
        from deeph_eval.predict import predict_blocks

        loaded = load_checkpoint(ckpt)
        centre = model_midgap(loaded, d)
        si = bulk("Si", "diamond", a=5.43)
        cell, pos, numbers = supercell_geometry(si.cell[:], si.positions, si.numbers, (n, n, n))
        atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=True)
    base = _reset_peak_rss()
    t0 = time.perf_counter()
    if ckpt:
        blocks = predict_blocks(loaded, atoms)
        h = BlockList.from_blocks(blocks, np.tile(d["n_orb"], n**3))
        del blocks
        sh = SparseBloch(h)
    else:
        h = BlockList(d["n_orb"], d["i"], d["j"], d["shift"], d["h"])
        sh = SparseBloch(supercell_blocks(h, (n, n, n)))
    ss = SparseBloch(supercell_blocks(s, (n, n, n)))
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    n_atoms = 2 * n**3
    # centre: mid-gap of the crystal (E_F of the insulator, away from any level); levels found on both sides
    lv = sparse_levels_near(sh, ss, [0, 0, 0], centre, n_bands)
    t_solve = time.perf_counter() - t1
    n_occ = 4 * n_atoms // 2
    idx = np.arange(lv.first_index, lv.first_index + len(lv.energies))
    vbm = lv.energies[idx == n_occ - 1]
    cbm = lv.energies[idx == n_occ]
    return {"n": n, "atoms": n_atoms, "orbitals": sh.dim, "nnz": sh.n_unique, "build_s": t_build, "solve_s": t_solve,
            "peak_MiB": _status_mib("VmHWM") - base,
            "gap_eV": float(cbm[0] - vbm[0]) if len(vbm) and len(cbm) else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop after the first size slower than this")
    ap.add_argument("--radius", type=float, default=6.0)
    ap.add_argument("--n-bands", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    ap.add_argument("--ckpt", default=None, help="checkpoint that predicts Si (default: tile the DFT H instead)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cache = Path(args.cache or f"/tmp/deeph_bench_si_r{args.radius:g}.npz")
    if args.one is not None:
        print(json.dumps(one_size(args.one, cache, args.n_bands, args.ckpt)))
        return
    primitive(cache, args.radius)
    what = f"H predicted by {args.ckpt}" if args.ckpt else "DFT H(R) tiled"
    print(f"Si supercells, {what}, exact S(R) tiled (radius {args.radius} Å), {args.n_bands} levels nearest E_F at Γ, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'atoms':>7} {'orbitals':>9} {'nnz(H)':>11} {'H(R) s':>8} {'solve s':>8} {'peak MiB':>9} {'Γ gap eV':>8}")
    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--cache", str(cache), "--n-bands",
                               str(args.n_bands)] + (["--ckpt", args.ckpt] if args.ckpt else []), capture_output=True, text=True, timeout=args.max_seconds * 4)
        if proc.returncode != 0:
            print(f"{2 * n**3:>7} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
            break
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(r)
        gap = "" if r["gap_eV"] is None else f"{r['gap_eV']:.3f}"
        print(f"{r['atoms']:>7} {r['orbitals']:>9} {r['nnz']:>11} {r['build_s']:>8.2f} {r['solve_s']:>8.2f} "
              f"{r['peak_MiB']:>9.0f} {gap:>8}", flush=True)
        if time.perf_counter() - t > args.max_seconds:
            break
    big = [r for r in rows if r["atoms"] >= 100]
    if len(big) >= 2:
        x = np.log([r["atoms"] for r in big])
        a = np.polyfit(x, np.log([r["build_s"] + r["solve_s"] for r in big]), 1)[0]
        b = np.polyfit(x, np.log([r["peak_MiB"] for r in big]), 1)[0]
        print(f"fitted over N >= 100 atoms: time ∝ N^{a:.2f}, peak memory ∝ N^{b:.2f}")


if __name__ == "__main__":
    main()
