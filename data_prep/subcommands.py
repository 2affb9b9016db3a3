"""The shape every deeph-* command line shares: one sub-command per module of a ``commands`` package.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``. Bad input
(ValueError, unreadable/unwritable/missing/existing files, unknown keys, bad arguments) ends with one line
naming what is wrong and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

OWN_PACKAGES = ("data_prep", "deeph_eval", "deeph_lightning")


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


def one_line_warnings(prefix: str):
    """``warnings.formatwarning`` that prints our own warnings as one line, ``<prefix>: warning: <message>``
    (where the warning was raised in our code is no use to someone running a command); others unchanged."""
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if category.__module__.split(".")[0] in OWN_PACKAGES:
            return f"{prefix}: warning: {' '.join(str(message).split())}\n"
        return default(message, category, filename, lineno, line)

    return formatwarning


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    default_format = warnings.formatwarning
    warnings.formatwarning = one_line_warnings(f"{parser.prog} {args.command}")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError) and err.filename and str(err.filename) not in str(msg):
            msg = f"{err.filename}: {err.strerror or err}"
        line = " ".join(str(msg).split())
        print(f"{parser.prog} {args.command}: error: {line}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format
