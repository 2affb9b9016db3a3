"""``deeph-eval``: from Hamiltonians and checkpoints to physics, one sub-command per module in ``deeph_eval.commands``."""

from __future__ import annotations

import sys

from data_prep.subcommands import build_parser as _build_parser
from data_prep.subcommands import run

COMMANDS = ("predict", "bands", "dos", "test", "compare", "export_sisl")


def build_parser():
    return _build_parser(
        "deeph-eval",
        "Evaluate DFT/DeepH Hamiltonians: prediction, band structures, DOS, band and block errors.",
        "deeph_eval.commands",
        COMMANDS,
    )


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
