"""``deeph-prep``: the data pipeline's command line, one sub-command per module in ``data_prep.commands``."""

from __future__ import annotations

import sys

from .subcommands import build_parser as _build_parser
from .subcommands import run

COMMANDS = ("generate", "dft", "check", "pack", "convert", "verify", "stats", "datasets")


def build_parser():
    return _build_parser(
        "deeph-prep",
        "Build DFT Hamiltonian datasets: structures -> DFT (DeepH folders) -> sharded LMDB.",
        "data_prep.commands",
        COMMANDS,
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
