"""``deeph-prep check``: band-structure fidelity of DeepH folders written by ``deeph-prep dft``.

For each folder the SCF is redone from the recipe in info.json; bands from the stored H(R), S(R) at random
k-points off the SCF and dense meshes are compared with PySCF's own bands there (meV, bands within window eV of
the band edges: E_F ± window for a metal, [VBM − window, CBM + window] for an insulator).
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("check", help="bands from stored H(R), S(R) vs PySCF at off-mesh k-points",
                              description=__doc__)
    p.add_argument("folders", nargs="+", help="DeepH folders written by deeph-prep dft")
    p.add_argument("--n-kpts", type=int, default=6)
    p.add_argument("--window", type=float, default=5.0, help="eV beyond the band edges (E_F ± window for metals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=10.0, help="meV; exit code 1 if any max error is larger")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..deeph_format import read_deeph
    from ..dft.fidelity import band_fidelity

    results, worst = {}, 0.0
    print(f"{'folder':<50} {'radius/Å':>9} {'max/meV':>9} {'mean/meV':>9}")
    for folder in args.folders:
        st = read_deeph(folder)
        r = band_fidelity(st, n_kpts=args.n_kpts, window=args.window, seed=args.seed)
        results[str(folder)] = r
        worst = max(worst, r["max_mev"])
        radius = "-" if r["radius"] is None else f"{r['radius']:.2f}"
        print(f"{str(folder):<50} {radius:>9} {r['max_mev']:9.3f} {r['mean_mev']:9.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(f"worst max error {worst:.3f} meV (tolerance {args.tolerance:g} meV)")
    return 0 if worst <= args.tolerance else 1
