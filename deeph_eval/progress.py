"""Progress lines on stderr for the slow steps of a ``deeph-eval`` command (a 10,000-atom band structure
takes most of an hour). Off unless a command turns it on, so library calls and tests stay quiet."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

_start: float | None = None


def enable() -> None:
    global _start
    _start = time.perf_counter()


def say(message: str) -> None:
    if _start is not None:
        print(f"[{time.perf_counter() - _start:8.1f} s] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(message: str):
    """``message ...`` before the step and ``message: x s`` after it."""
    t0 = time.perf_counter()
    say(f"{message} ...")
    yield
    say(f"{message}: {time.perf_counter() - t0:.1f} s")
