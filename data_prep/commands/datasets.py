"""``deeph-prep datasets``: the datasets shipped in the repository, with size, elements and recipe."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("datasets", help="list the shipped datasets (use: data_prep.embedded.dataset_path(name))",
                       description=__doc__)
    p.add_argument("--path", metavar="NAME", help="extract dataset NAME (once) and print its folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..embedded.datasets import dataset_path, list_datasets

    if args.path:
        print(dataset_path(args.path))
        return 0
    rows = list_datasets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        planned = f" of {r['planned']} planned" if r.get("planned") else ""
        failed = f", {r['failures']} failed" if r.get("failures") else ""
        print(f"{r['name']:<16} {r['structures']} structures{planned}{failed}, {len(r['elements'])} elements, "
              f"{r['size_mb']:.1f} MB")
        print(f"{'':<16} elements: {' '.join(r['elements'])}")
        print(f"{'':<16} recipe: {r['recipe']}")
    return 0
