"""``deeph-eval``: physics checks of Hamiltonians. One sub-command per module in ``deeph_eval.commands``.

Each command module defines ``register(subparsers)`` which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("bands", "dos", "compare", "predict", "test")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeph-eval",
        description="Evaluate DFT/DeepH Hamiltonians: band structures, DOS, band and block errors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"deeph_eval.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"deeph_eval.commands.{name}":
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
        print(f"deeph-eval {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
