"""The energy zero of a Hamiltonian (numpy, on ``Blocks`` dicts).

In periodic DFT the zero of the potential is arbitrary per structure: H and H + c·S (S the overlap) have the
same eigenvectors and eigenvalues shifted rigidly by c. A structure's gauge is fixed by

    μ = <H, S> / <S, S>        (Frobenius products summed over a set of blocks)

and the *standardised* Hamiltonian is H - μ·S, for which <H, S> = 0 over those blocks (the least-squares
rigid shift removed, as the DeepH team standardises training targets). μ depends on the block set: models
use the blocks they predict (on-site blocks + pairs within the model cutoff).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .deeph_format import BlockKey, Blocks

GAUGES = ("raw", "standardised")


def check_gauge(gauge: str, what: str = "target_gauge") -> str:
    if gauge not in GAUGES:
        raise ValueError(f"{what} must be one of {', '.join(GAUGES)}, got {gauge!r}")
    return gauge


def gauge_mu(h: Blocks, s: Blocks, keys: Iterable[BlockKey] | None = None) -> float:
    """μ = <H, S> / <S, S> over ``keys`` (default: every block of ``h``); blocks without S count as S = 0."""
    hs = ss = 0.0
    for key in h if keys is None else keys:
        sk = s.get(key)
        if sk is None:
            continue
        sk = np.asarray(sk, dtype=np.float64)
        hs += float(np.vdot(sk, np.asarray(h[key], dtype=np.float64)))
        ss += float(np.vdot(sk, sk))
    if ss <= 0.0:
        raise ValueError("no overlap block among the blocks: the gauge μ = <H,S>/<S,S> is undefined")
    return hs / ss


def shifted(h: Blocks, s: Blocks, c: float) -> Blocks:
    """H + c·S on the blocks of ``h`` (a block without S is unchanged: S = 0 there); bands move up by c."""
    return {key: (np.asarray(b, dtype=np.float64) + c * s[key]) if key in s else b for key, b in h.items()}


def standardised(h: Blocks, s: Blocks, keys: Iterable[BlockKey] | None = None) -> tuple[Blocks, float]:
    """(H - μ·S, μ), μ over ``keys`` (default: every block of ``h``)."""
    mu = gauge_mu(h, s, keys)
    return shifted(h, s, -mu), mu
