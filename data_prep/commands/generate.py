"""``deeph-prep generate``: a deterministic structure catalogue (one extxyz per structure + manifest.jsonl)."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate a deterministic catalogue of structures",
                              description=__doc__)
    p.add_argument("--n", type=int, required=True, help="number of structures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elements", default="all",
                   help="comma-separated symbols, or 'all' (every element the DFT recipe supports)")
    p.add_argument("--prototypes", default=None, help="comma-separated prototype names (default: all)")
    p.add_argument("--max-atoms", type=int, default=16)
    p.add_argument("--strain", type=float, default=0.03, help="std of the random strain components")
    p.add_argument("--rattle", type=float, default=0.05, help="std of the random displacements, Å")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..catalogue import PROTOTYPE_NAMES, generate, write_catalogue

    elements = None if args.elements == "all" else [e.strip() for e in args.elements.split(",") if e.strip()]
    protos = None if not args.prototypes else [p.strip() for p in args.prototypes.split(",") if p.strip()]
    if protos:
        bad = [p for p in protos if p not in PROTOTYPE_NAMES]
        if bad:
            raise ValueError(f"unknown prototype(s) {', '.join(bad)} (known: {', '.join(PROTOTYPE_NAMES)})")
    structures = generate(args.n, args.seed, elements, prototypes=protos, max_atoms=args.max_atoms,
                          strain=args.strain, rattle=args.rattle)
    manifest = write_catalogue(structures, args.out)
    print(f"wrote {len(structures)} structures and {manifest}")
    return 0
