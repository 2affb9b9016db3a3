"""Model cutoff by measurement: the truncation floor and the graph size of a cutoff, on DFT DeepH folders.

    python bench/cutoff_floor.py [FOLDER ...] [--cutoffs 6,7,8,9] [--n-kpts 6] [--window 2]

FOLDER: DeepH folders (or folders of them); default: the shipped universal-mini dataset. For each cutoff the
reference H is cut to the blocks a model with that cutoff predicts (on-site + its graph's edges, exact S), and
its bands at random off-mesh k-points are compared with the full H's (meV, bands within window eV of the band
edges, ``data_prep.dft.fidelity.edge_window``). Printed
per structure and summarised per cutoff (median/p90/max of the per-structure MAE, edges per atom: the model's
cost grows linearly with it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data_prep.deeph_format import read_deeph
from data_prep.dft.atom_reference import onsite_table
from data_prep.dft.fidelity import edge_window, off_mesh_kpoints
from data_prep.gauge import GAUGES, huckel_blocks, in_gauge, standardised
from data_prep.kspace import band_energies
from deeph_eval.truncation import graph_keys


def folders_of(paths: list[str]) -> list[Path]:
    if not paths:
        from data_prep.embedded import dataset_path

        paths = [str(dataset_path("universal-mini"))]
    out: list[Path] = []
    for p in map(Path, paths):
        out += [p] if (p / "info.json").exists() else sorted(q.parent for q in p.glob("*/info.json"))
    return out


def floor(st, keys: set, kpts, full: np.ndarray, window: float, gauge: str = "raw",
          h0_beyond: bool = False, h0: dict | None = None) -> tuple[float, float, float]:
    """(MAE meV, max meV, edges per atom) of the reference H truncated to ``keys`` (a cutoff's ``graph_keys``).
    ``standardised``: the blocks are cut in the gauge a standardised model predicts (H - μS, μ over the kept
    blocks; μS added back with the full S), the floor such a model sees. ``huckel``: H - μ_h S cut
    (μ_h = <H - H0, S>/<S, S> over the kept blocks, H0 the free atoms + extended-Hückel hoppings,
    ``data_prep.gauge.huckel_blocks``), as a huckel model's H is (``h0``: its H0 blocks, computed once per
    structure by the caller); ``h0_beyond``: H0 also added on the blocks of S beyond the cutoff (measured: worse)."""
    mu = 0.0
    if gauge == "huckel":
        kept, mu = in_gauge("huckel", {k: st.hamiltonians[k] for k in keys}, st.overlaps, reference=h0)
        if h0_beyond:
            kept = {**h0, **kept}
    elif gauge == "standardised":
        h, mu = standardised(st.hamiltonians, st.overlaps, keys)
        kept = {k: h[k] for k in keys}
    else:
        kept = {k: st.hamiltonians[k] for k in keys}
    cut = band_energies(kept, st.overlaps, st.n_orbitals(), kpts) + mu
    sel = edge_window(full, st.fermi_level, window)
    err = np.abs(cut - full)[sel] * 1000.0
    return float(err.mean()), float(err.max()), (len(keys) - st.n_atoms) / st.n_atoms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="*")
    p.add_argument("--cutoffs", default="6,7,8,9")
    p.add_argument("--n-kpts", type=int, default=6)
    p.add_argument("--window", type=float, default=2.0)
    p.add_argument("--gauge", choices=GAUGES, default="raw", help="the gauge the blocks are cut in")
    p.add_argument("--h0-beyond", action="store_true", help="huckel: add H0 on S's blocks beyond the cutoff")
    args = p.parse_args()
    cutoffs = [float(c) for c in args.cutoffs.split(",")]
    kpts = off_mesh_kpoints(args.n_kpts, seed=0)
    rows: dict[float, list[tuple[float, float, float]]] = {c: [] for c in cutoffs}
    print(f"{'structure':<44} {'atoms':>5} " + " ".join(f"{f'{c:g} Å MAE/max meV, edges/atom':>30}" for c in cutoffs))
    for folder in folders_of(args.folders):
        st = read_deeph(folder)
        full = band_energies(st.hamiltonians, st.overlaps, st.n_orbitals(), kpts)
        h0 = None
        if args.gauge == "huckel":
            table = onsite_table(st.info["dft"], set(int(z) for z in st.numbers))
            h0 = huckel_blocks(st.numbers, table, st.overlaps)
        cols = []
        for c in cutoffs:
            keys = graph_keys(st, c)
            if any(k not in st.hamiltonians for k in keys):
                print(f"cutoff_floor: {folder}: no stored blocks for part of the {c:g} Å graph (the data was "
                      "computed to a smaller cutoff); use smaller --cutoffs", file=sys.stderr)
                sys.exit(2)
            r = floor(st, keys, kpts, full, args.window, args.gauge, args.h0_beyond, h0)
            rows[c].append(r)
            cols.append(f"{r[0]:9.2f} / {r[1]:8.2f}, {r[2]:6.1f}")
        print(f"{folder.name:<44} {st.n_atoms:>5} " + " ".join(f"{c:>30}" for c in cols), flush=True)
    print(f"\n{'cutoff Å':>8} {'n':>4} {'median MAE':>11} {'p90 MAE':>9} {'max MAE':>9} {'max err':>9} {'edges/atom':>11}")
    for c in cutoffs:
        a = np.array(rows[c])
        print(f"{c:8g} {len(a):4d} {np.median(a[:, 0]):11.2f} {np.percentile(a[:, 0], 90):9.2f} {a[:, 0].max():9.2f} "
              f"{a[:, 1].max():9.2f} {np.median(a[:, 2]):11.1f}")


if __name__ == "__main__":
    main()
