"""The shape every deeph-* command line shares: one sub-command per module of a ``commands`` package.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``. Bad input
(ValueError, missing/existing files, unknown keys) ends with one line naming what is wrong and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence


def build_parser(prog: str, description: str, package: str, commands: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"{package}.{name}").register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{parser.prog} {args.command}: error: {msg}", file=sys.stderr)
        return 2
