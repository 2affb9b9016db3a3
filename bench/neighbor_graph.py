"""Neighbour-graph build time vs structure size (diamond Si supercells, cutoff 7.5 Å).

    python bench/neighbor_graph.py [--cutoff 7.5] [--max-atoms 16000]

Prints atoms, edges, seconds and edges/s per size, plus the fitted exponent of time ~ atoms^p (expect ~1).
"""

import argparse
import time

import numpy as np
from ase.build import bulk

from data_prep.graph import neighbor_graph


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cutoff", type=float, default=7.5)
    ap.add_argument("--max-atoms", type=int, default=16000)
    args = ap.parse_args()
    rows = []
    print(f"{'atoms':>7} {'edges':>10} {'seconds':>8} {'Medges/s':>9}")
    for n in (1, 2, 3, 4, 6, 8, 10, 12, 14):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (n, n, n)
        if len(atoms) > args.max_atoms:
            break
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            ei, _, _ = neighbor_graph(atoms.cell.array, atoms.positions, atoms.pbc, args.cutoff)
            best = min(best, time.perf_counter() - t0)
        rows.append((len(atoms), ei.shape[1], best))
        print(f"{len(atoms):>7} {ei.shape[1]:>10} {best:>8.3f} {ei.shape[1] / best / 1e6:>9.2f}")
    a = np.array(rows, dtype=float)
    big = a[a[:, 0] >= 500]
    if len(big) >= 2:
        p = np.polyfit(np.log(big[:, 0]), np.log(big[:, 2]), 1)[0]
        print(f"fitted exponent (>= 500 atoms): time ~ atoms^{p:.2f}")


if __name__ == "__main__":
    main()
