"""``deeph-prep``: the data pipeline's command line. One sub-command per module in ``data_prep.commands``.

Each command module defines ``register(subparsers)`` which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("generate", "dft", "check", "pack", "verify", "stats")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeph-prep",
        description="Build DFT Hamiltonian datasets: structures -> DFT (DeepH folders) -> sharded LMDB.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"data_prep.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"data_prep.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        # Bad input: one clear line naming the file/record, no traceback.
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"deeph-prep {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
