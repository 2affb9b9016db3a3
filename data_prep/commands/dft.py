"""``deeph-prep dft``: structures -> PySCF DFT -> one DeepH folder per structure (resumable, SLURM arrays)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def add_settings_arguments(p) -> None:
    g = p.add_argument_group("DFT recipe (defaults: data_prep.dft.DFTSettings)")
    g.add_argument("--config", help="JSON file with DFTSettings fields (flags below override it)")
    g.add_argument("--xc")
    g.add_argument("--basis")
    g.add_argument("--pseudo")
    g.add_argument("--kspacing", type=float, help="SCF k-spacing, 1/Å with 2π")
    g.add_argument("--kmesh", type=int, nargs=3, help="explicit SCF k-mesh")
    g.add_argument("--radius", type=float, help="storage radius of the blocks, Å")
    g.add_argument("--alias-radius", type=float,
                   help="Å, >= radius: size the non-SCF mesh so H(R) is alias-free to here (default: radius)")
    g.add_argument("--dense-kmesh", type=int, nargs=3, help="non-SCF mesh for H(R) (default: sized from alias radius)")
    g.add_argument("--density-fit", choices=["multigrid", "fftdf", "gdf"])
    g.add_argument("--ke-cutoff", type=float, help="density grid cutoff, Hartree")
    g.add_argument("--ke-cutoff-d", type=float, help="density grid cutoff of cells with d shells, Hartree")
    g.add_argument("--smearing", type=float, help="Fermi-Dirac width, eV")
    g.add_argument("--conv-tol", type=float)
    g.add_argument("--threads", type=int, help="OpenMP threads per DFT process")


def settings_from_args(args):
    from ..dft import DFTSettings

    values = {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{args.config}: cannot read DFT settings ({err})") from None
    for name in ("xc", "basis", "pseudo", "kspacing", "kmesh", "radius", "alias_radius", "dense_kmesh", "density_fit",
                 "ke_cutoff", "ke_cutoff_d", "smearing", "conv_tol", "threads"):
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    return DFTSettings.from_dict(values)


def register(subparsers) -> None:
    p = subparsers.add_parser("dft", help="run PySCF DFT for structures, write DeepH folders", description=__doc__)
    p.add_argument("structures", nargs="+", help="structure files (anything ASE reads), manifest.jsonl or folders")
    p.add_argument("--out", required=True, help="output folder (one DeepH folder per structure id)")
    p.add_argument("--array-index", type=int, default=None, help="this task's index (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--array-count", type=int, default=None, help="number of tasks (default: $SLURM_ARRAY_TASK_COUNT)")
    p.add_argument("--workers", type=int, default=1, help="structures computed at once")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds of compute per structure (CPU time / --threads; wall time where /proc is missing) "
                   "before it is killed: a paused or starved run does not time out")
    add_settings_arguments(p)
    p.set_defaults(func=run)


def _array_from_env(args) -> tuple[int, int]:
    index, count = args.array_index, args.array_count
    if index is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
    if count is None and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        count = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    return (index or 0), (count or 1)


def run(args) -> int:
    from ..dft.batch import run_batch
    from ..structures import read_structures

    settings = settings_from_args(args)
    index, count = _array_from_env(args)
    structures = read_structures(args.structures)
    counts = run_batch(structures, args.out, settings, array_index=index, array_count=count,
                       workers=args.workers, timeout=args.timeout, log=lambda m: print(m, flush=True))
    print(f"done {counts['done']}, skipped (already done) {counts['skipped']}, failed {counts['failed']}")
    return 1 if counts["failed"] else 0
