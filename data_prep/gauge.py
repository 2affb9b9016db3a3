"""The energy zero of a Hamiltonian (numpy, on ``Blocks`` dicts).

In periodic DFT the zero of the potential is arbitrary per structure: H and H + c·S (S the overlap) have the
same eigenvectors and eigenvalues shifted rigidly by c. A structure's gauge is fixed by

    μ = <H, S> / <S, S>        (Frobenius products summed over a set of blocks)

and the *standardised* Hamiltonian is H - μ·S, for which <H, S> = 0 over those blocks (the least-squares
rigid shift removed, as the DeepH team standardises training targets). μ depends on the block set: models
use the blocks they predict (on-site blocks + pairs within the model cutoff).

That μ averages every level of the structure, so an element's standardised levels depend on its partners (a
Cl 3p level moves with the Na 2s/2p semicore of NaCl). The *atoms* gauge first subtracts the isolated atoms
(``data_prep.dft.atom_reference``; A the block-diagonal on-site H of the structure's free atoms), then
standardises what is left, as the DeepH team prepares its targets:

    μ_a = <H - A, S> / <S, S>        (A zero off the on-site blocks)

so the levels are measured from the free atoms'. It is still a least-squares shift over all blocks: the
projection of a prediction onto μ_a = 0 is the same orthogonal projection of its error as for standardised
targets (only the zero differs), and the hoppings keep about the standardised size.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .deeph_format import BlockKey, Blocks

GAUGES = ("raw", "standardised", "atoms")


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


def atoms_mu(h: Blocks, s: Blocks, atoms: Blocks, keys: Iterable[BlockKey] | None = None) -> float:
    """μ_a = <H - A, S> / <S, S> over ``keys`` (default: every block of ``h``), A = ``atoms`` on the on-site
    blocks ({key of H_ii: A_i}, ``atom_blocks``) and zero elsewhere."""
    keys = list(h if keys is None else keys)
    return gauge_mu({k: np.asarray(h[k], dtype=np.float64) - atoms[k] if k in atoms else h[k] for k in keys}, s, keys)


def atom_blocks(numbers, table: dict) -> Blocks:
    """{(0, 0, 0, i, i): A_i} for a structure's atomic ``numbers`` from a table {Z: isolated-atom on-site H}."""
    missing = sorted({int(z) for z in numbers} - {int(z) for z in table})
    if missing:
        raise ValueError(f"no isolated-atom reference for element(s) {missing}")
    return {(0, 0, 0, i, i): np.asarray(table[int(z)], dtype=np.float64) for i, z in enumerate(numbers)}


def in_gauge(gauge: str, h: Blocks, s: Blocks, keys: Iterable[BlockKey] | None = None,
             atoms: Blocks | None = None) -> tuple[Blocks, float]:
    """(H - μ·S, μ) with the μ of ``gauge`` (raw: H, 0); ``keys`` the block set of ``standardised``, ``atoms``
    (``atom_blocks``) the reference of the atoms gauge."""
    check_gauge(gauge)
    if gauge == "raw":
        return h, 0.0
    if gauge == "standardised":
        return standardised(h, s, keys)
    if atoms is None:
        raise ValueError("the atoms gauge needs the isolated-atom on-site blocks (atom_blocks)")
    mu = atoms_mu(h, s, atoms, keys)
    return shifted(h, s, -mu), mu
