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

The *huckel* gauge subtracts a whole reference Hamiltonian H0 built from the free atoms and S before
standardising: A_i on the on-site blocks and the extended-Hückel hoppings (Wolfsberg–Helmholz)

    H0_ij(R) = K/2 (A_i S_ij(R) + S_ij(R) A_j),      K = ``HUCKEL_K``

and the model learns the rest, H - H0 - μ_h·S with μ_h = <H - H0, S>/<S, S>. H0 carries the part of every
hopping that is just "overlap times the atoms' levels", the part that made atoms-gauge hoppings large.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .deeph_format import BlockKey, Blocks

GAUGES = ("raw", "standardised", "atoms", "huckel")
HUCKEL_K = 1.75  # Wolfsberg–Helmholz constant of extended Hückel theory
ATOM_GAUGES = ("atoms", "huckel")  # the gauges whose reference is built from the isolated atoms


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
    """μ_a = <H - A, S> / <S, S> over ``keys`` (default: every block of ``h``), A = ``atoms`` where it has a
    block (``atom_blocks``: the on-site blocks; ``huckel_blocks``: all) and zero elsewhere."""
    keys = list(h if keys is None else keys)
    return gauge_mu({k: np.asarray(h[k], dtype=np.float64) - atoms[k] if k in atoms else h[k] for k in keys}, s, keys)


def atom_blocks(numbers, table: dict) -> Blocks:
    """{(0, 0, 0, i, i): A_i} for a structure's atomic ``numbers`` from a table {Z: isolated-atom on-site H}."""
    missing = sorted({int(z) for z in numbers} - {int(z) for z in table})
    if missing:
        raise ValueError(f"no isolated-atom reference for element(s) {missing}")
    return {(0, 0, 0, i, i): np.asarray(table[int(z)], dtype=np.float64) for i, z in enumerate(numbers)}


def huckel_blocks(numbers, table: dict, s: Blocks, keys: Iterable[BlockKey] | None = None,
                  k: float = HUCKEL_K) -> Blocks:
    """The huckel gauge's reference H0 on ``keys`` (default: every block of ``s``): the free atoms' on-site
    blocks A_i, and K/2 (A_i S_ij + S_ij A_j) on every other block (zero where S has no block)."""
    atoms = atom_blocks(numbers, table)
    out = {}
    for key in s if keys is None else keys:
        i, j = key[3], key[4]
        if key in atoms:
            out[key] = atoms[key]
        elif key in s:
            sij = np.asarray(s[key], dtype=np.float64)
            out[key] = 0.5 * k * (atoms[(0, 0, 0, i, i)] @ sij + sij @ atoms[(0, 0, 0, j, j)])
    return out


def in_gauge(gauge: str, h: Blocks, s: Blocks, keys: Iterable[BlockKey] | None = None,
             reference: Blocks | None = None) -> tuple[Blocks, float]:
    """(H - μ·S, μ) with the μ of ``gauge`` (raw: H, 0); ``keys`` the block set of ``standardised``;
    ``reference`` the atoms gauge's ``atom_blocks`` or the huckel gauge's ``huckel_blocks``: μ = <H - ref, S>/<S, S>."""
    check_gauge(gauge)
    if gauge == "raw":
        return h, 0.0
    if gauge == "standardised":
        return standardised(h, s, keys)
    if reference is None:
        maker = "atom_blocks" if gauge == "atoms" else "huckel_blocks"
        raise ValueError(f"the {gauge} gauge needs its reference blocks ({maker})")
    mu = atoms_mu(h, s, reference, keys)
    return shifted(h, s, -mu), mu
