"""``deeph-prep generate``: a deterministic structure catalogue (one extxyz per structure + manifest.jsonl).

Modes: ``materials`` (default) draws charge-balanced compounds in common prototypes, elemental crystals,
molecules and about 10% complicated cases (defects, slabs, bilayers, strained and larger cells) over the
universal-mini element set; ``random`` decorates prototypes with any elements (stress tests, not physics).
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate a deterministic catalogue of structures",
                              description=__doc__)
    p.add_argument("--n", type=int, required=True, help="number of structures")
    p.add_argument("--mode", choices=["materials", "random"], default="materials",
                   help="materials: realistic compounds and complicated cases (default); random: any elements "
                        "on any prototype")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elements", default="all",
                   help="comma-separated symbols, or 'all' (materials: the universal-mini set, main group H-Bi "
                        "without noble gases plus Sc-Zn; random: every element the DFT recipe supports)")
    p.add_argument("--prototypes", default=None, help="random mode: comma-separated prototype names (default: all)")
    p.add_argument("--max-atoms", type=int, default=None, help="largest cell (default: materials 32, random 16)")
    p.add_argument("--complicated", type=float, default=0.1,
                   help="materials mode: fraction of defects, slabs, bilayers, strained and larger cells")
    p.add_argument("--strain", type=float, default=None,
                   help="std of the random strain components (default: materials 0.02, random 0.03)")
    p.add_argument("--rattle", type=float, default=None,
                   help="std of the random displacements, Å (default: materials 0.03, random 0.05)")
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
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    if args.mode == "materials":
        from ..materials import generate_materials

        if protos:
            raise ValueError("--prototypes applies to --mode random only")
        structures = generate_materials(args.n, args.seed, elements, complicated_fraction=args.complicated,
                                        max_atoms=args.max_atoms or 32, strain=_or(args.strain, 0.02),
                                        rattle=_or(args.rattle, 0.03))
    else:
        structures = generate(args.n, args.seed, elements, prototypes=protos, max_atoms=args.max_atoms or 16,
                              strain=_or(args.strain, 0.03), rattle=_or(args.rattle, 0.05))
    manifest = write_catalogue(structures, args.out)
    print(f"wrote {len(structures)} structures and {manifest}")
    return 0


def _or(value, default):
    return default if value is None else value
