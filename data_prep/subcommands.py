"""The shape every deeph-* command line shares: one sub-command per module of a ``commands`` package.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``. Bad input
(ValueError, unreadable/unwritable/missing/existing files, unknown keys, bad arguments) ends with one line
naming what is wrong and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (exit 2) instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str, description: str, package: str, commands: Sequence[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"{package}.{name}").register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and err.filename and str(err.filename) not in str(msg):
            msg = f"{err.filename}: {err.strerror or err}"
        line = " ".join(str(msg).split())
        print(f"{parser.prog} {args.command}: error: {line}", file=sys.stderr)
        return 2
