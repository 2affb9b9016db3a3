"""Inference scaling: H(R) on n×n×n Si supercells, then E_F, gap and the bands nearest E_F at Γ.

Timed path per size (each in its own process), as ``deeph-eval bands --solver sparse`` runs it:
1. H(R): predicted on the whole supercell by --ckpt (``deeph_eval.predict.predict_blocks``, float64
   inference), or without --ckpt the primitive cell's DFT H(R) tiled (the solver alone); S(R): the
   primitive cell's exact DFT overlaps (PySCF, SZV-MOLOPT-SR-GTH, within --radius Å) tiled (exact for a
   perfect crystal); sparse Bloch matrices.
2. E_F+levels s: ``deeph_eval.fermi.gamma_filling`` from the electron count alone: KPM level count, Γ inertia
   (sparse LDLᴴ) until exactly N_e/2 levels lie below σ, then --n-bands levels around σ (half below, half
   above) by block Krylov on that same LDLᴴ: E_F, VBM, CBM, gap. With --solver matrix-free: no factorization;
   σ from the KPM count, the levels by block Krylov shift-invert with preconditioned MINRES solves
   (``deeph_eval.solvers.matrix_free``), memory linear.
Peak MiB = peak RSS during 1-2 (VmHWM reset after imports; includes SuperLU's C allocations) minus the RSS
after imports. The Γ gap is checked against the primitive cell's dense bands on the n×n×n mesh (band
folding; with --ckpt the primitive cell's predicted H): "gap err". Prints one row per size and the fitted
exponents t ∝ N^a, mem ∝ N^b.

    python bench/inference_scaling.py [--ckpt CKPT] [--max-seconds 120] [--radius 6.0] [--n-bands 16]
                                      [--solver sparse|matrix-free]
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
        from deeph_eval.solvers import dense_eigvals
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


def folded_gap(d, n: int, h_blocks=None) -> float:
    """Γ gap of the perfect n×n×n supercell = gap of the primitive bands on the n×n×n mesh (band folding).
    ``h_blocks``: the primitive cell's predicted H (a prediction is translation invariant, so the supercell's
    predicted H is the tiled primitive one); default: its DFT H."""
    from deeph_eval.blocklist import BlockList
    from deeph_eval.solvers import dense_eigvals

    h = h_blocks if h_blocks is not None else BlockList(d["n_orb"], d["i"], d["j"], d["shift"], d["h"]).to_blocks()
    s = BlockList(d["n_orb"], d["s_i"], d["s_j"], d["s_shift"], d["s"]).to_blocks()
    mesh = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    e = dense_eigvals(h, s, d["n_orb"], mesh)
    return float(e[:, 4].min() - e[:, 3].max())  # 8 electrons: 4 occupied bands


def one_size(n: int, cache: Path, n_bands: int, ckpt: str | None, solver: str) -> dict:
    from deeph_eval.blocklist import BlockList, supercell_blocks, supercell_geometry
    from deeph_eval.fermi import gamma_filling
    from deeph_eval.solvers import SparseBloch

    d = np.load(cache)
    s = BlockList(d["n_orb"], d["s_i"], d["s_j"], d["s_shift"], d["s"])
    if ckpt:
        from ase import Atoms
        from ase.build import bulk

        from deeph_eval.model_io import load_checkpoint
        from deeph_eval.predict import predict_blocks

        loaded = load_checkpoint(ckpt)
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
    del h
    t_build = time.perf_counter() - t0
    n_atoms = 2 * n**3
    t1 = time.perf_counter()
    # E_F and gap from the electron count alone, and the n_bands Γ levels around E_F from the same LDLᴴ
    fill, _ = gamma_filling(sh, ss, 4 * n_atoms, n_levels=n_bands, solver=solver)
    t_solve = time.perf_counter() - t1
    peak = _status_mib("VmHWM") - base
    return {"n": n, "atoms": n_atoms, "orbitals": sh.dim, "nnz": sh.n_unique, "build_s": t_build, "solve_s": t_solve,
            "peak_MiB": peak, "gap_eV": fill.gap,
            "gap_ref_eV": folded_gap(d, n, predict_blocks(loaded, si) if ckpt else None)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop after the first size slower than this")
    ap.add_argument("--radius", type=float, default=6.0)
    ap.add_argument("--n-bands", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    ap.add_argument("--ckpt", default=None, help="checkpoint that predicts Si (default: tile the DFT H instead)")
    ap.add_argument("--solver", choices=("sparse", "matrix-free"), default="sparse")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cache = Path(args.cache or f"/tmp/deeph_bench_si_r{args.radius:g}.npz")
    if args.one is not None:
        print(json.dumps(one_size(args.one, cache, args.n_bands, args.ckpt, args.solver)))
        return
    primitive(cache, args.radius)
    what = f"H predicted by {args.ckpt}" if args.ckpt else "DFT H(R) tiled"
    print(f"Si supercells, {what}, exact S(R) tiled (radius {args.radius} Å), {args.n_bands} levels nearest E_F at Γ, "
          f"solver {args.solver}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'atoms':>7} {'orbitals':>9} {'nnz(H)':>11} {'H(R) s':>8} {'E_F+levels s':>13} {'peak MiB':>9} "
          f"{'Γ gap eV':>8} {'gap err meV':>11}")
    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--cache", str(cache), "--n-bands",
                               str(args.n_bands), "--solver", args.solver] + (["--ckpt", args.ckpt] if args.ckpt else []),
                              capture_output=True, text=True, timeout=args.max_seconds * 4)
        if proc.returncode != 0:
            print(f"{2 * n**3:>7} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
            break
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(r)
        gap = "metal" if r["gap_eV"] is None else f"{r['gap_eV']:.3f}"
        err = "" if r["gap_eV"] is None or r["gap_ref_eV"] is None else f"{1000 * (r['gap_eV'] - r['gap_ref_eV']):.4f}"
        print(f"{r['atoms']:>7} {r['orbitals']:>9} {r['nnz']:>11} {r['build_s']:>8.2f} {r['solve_s']:>13.2f} "
              f"{r['peak_MiB']:>9.0f} {gap:>8} {err:>11}", flush=True)
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
