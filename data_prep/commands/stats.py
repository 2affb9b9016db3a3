"""deeph-prep stats DIR: elements, sizes and value ranges of a packed dataset."""

from __future__ import annotations

import json

from ..inspect_dataset import dataset_stats


def register(sub) -> None:
    p = sub.add_parser("stats", help="print statistics of a packed dataset")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=run)


def run(args) -> int:
    s = dataset_stats(args.dataset)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"dataset   {s['path']}")
    print(f"records   {s['records']}   splits {s['splits']}   cutoff {s['cutoff']} Å")
    print("basis     " + ", ".join(f"{el}:{ls}" for el, ls in s["basis"].items()))
    print("atoms     " + ", ".join(f"{el}×{n}" for el, n in s["atoms_per_element"].items()))
    for key in ("n_atoms", "n_edges", "n_matrix_elements"):
        v = s[key]
        print(f"{key:<18} min {v['min']:.0f}  mean {v['mean']:.1f}  max {v['max']:.0f}")
    for key in ("h_onsite_eV", "h_hopping_eV"):
        v = s[key]
        if v:
            print(f"{key:<18} min {v['min']:.3f}  max {v['max']:.3f}  mean|H| {v['mean_abs']:.4f}  ({v['count']} values)")
    return 0
