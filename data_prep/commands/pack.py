"""deeph-prep pack SRC... --out DIR: DeepH-format folders -> sharded LMDB dataset (all-or-nothing)."""

from __future__ import annotations

from ..lmdb_dataset import DEFAULT_CUTOFF, pack_folders


def register(sub) -> None:
    p = sub.add_parser("pack", help="pack DeepH-format folders into a sharded LMDB dataset")
    p.add_argument("sources", nargs="+", help="DeepH folders, or directories searched recursively for them")
    p.add_argument("--out", required=True, help="output dataset folder (must not exist unless --overwrite)")
    p.add_argument("--cutoff", type=float, default=DEFAULT_CUTOFF, help="graph cutoff radius in Å (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="parallel writer processes, one shard each")
    p.add_argument("--shards", type=int, default=None, help="number of shards (default: = workers)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--missing-blocks", choices=("error", "zero"), default="error",
                   help="a pair within the cutoff with no stored block: fail (default) or treat as exact zero")
    p.add_argument("--hermiticity-tol", type=float, default=1e-4, help="eV; larger |H_ij(R)-H_ji(-R)^T| is an error")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it holds only a dataset written by deeph-prep pack")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    out = pack_folders(
        args.sources, args.out, cutoff=args.cutoff, workers=args.workers, shards=args.shards,
        split_seed=args.split_seed, split_fractions=args.split, missing_blocks=args.missing_blocks,
        hermiticity_tol=args.hermiticity_tol, overwrite=args.overwrite, progress=not args.quiet,
    )
    print(f"packed dataset written to {out}")
    return 0
