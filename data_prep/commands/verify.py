"""deeph-prep verify DIR: decode every record and check checksums, schema, counts, NaN and hermiticity."""

from __future__ import annotations

import json

from ..inspect_dataset import verify_dataset


def register(sub) -> None:
    p = sub.add_parser("verify", help="check a packed dataset record by record")
    p.add_argument("dataset")
    p.add_argument("--tol", type=float, default=1e-4, help="hermiticity tolerance in eV (default %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    report = verify_dataset(args.dataset, tol=args.tol)
    print(json.dumps(report, indent=2))
    print(f"OK: {report['records']} records in {report['shards']} shard(s) verified; checksums: {report['checksums']}")
    return 0
