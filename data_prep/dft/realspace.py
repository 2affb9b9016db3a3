"""Bloch matrices on a k-mesh -> real-space blocks H_ij(R), and exact real-space overlaps S_ij(R).

With PySCF's Bloch sums φ_μk = Σ_T e^{ik·T} φ_μ(r−T), H(k) = Σ_R e^{ik·R} H(R) with H_μν(R) = <μ,0|H|ν,R>
(our convention, see ``data_prep.kspace``). Inverting on an N1×N2×N3 Γ-centred mesh gives
    (1/N_k) Σ_k e^{−ik·R} H(k) = Σ_L H(R + L),   L over the Born-von Kármán supercell lattice,
i.e. H(R) plus its aliases. Every nonzero L is at least 2ρ long (ρ = half the smallest plane spacing of
the supercell), so for a pair closer than ρ all aliases lie beyond ρ: blocks are stored only for pairs
closer than min(radius, ρ), where the aliases are as small as the truncated tail itself.
"""

from __future__ import annotations

import numpy as np

from ..deeph_format import Blocks
from ..graph import neighbor_graph
from .orbitals import ao_transform, cell_shells
from .settings import plane_spacings


def alias_free_radius(cell_rows: np.ndarray, kmesh) -> float:
    """ρ: half the smallest plane spacing of the Born-von Kármán supercell of ``kmesh``."""
    return float(0.5 * np.min(plane_spacings(cell_rows) * np.asarray(kmesh, dtype=float)))


def block_pairs(cell_rows: np.ndarray, positions: np.ndarray, radius: float) -> np.ndarray:
    """(P, 5) int rows (Rx, Ry, Rz, i, j): on-site blocks plus every pair with |r_j + R·cell − r_i| < radius."""
    n = len(positions)
    onsite = np.array([[0, 0, 0, a, a] for a in range(n)], dtype=np.int64)
    edge_index, shift, _ = neighbor_graph(cell_rows, positions, np.ones(3, dtype=bool), radius)
    edges = np.concatenate([shift, edge_index.T], axis=1).astype(np.int64)
    return np.concatenate([onsite, edges], axis=0)


def _blocks_from_full(mats: np.ndarray, rs: np.ndarray, pairs: np.ndarray, ao_slices) -> Blocks:
    """Cut per-R full AO matrices (n_R, nao, nao) into the blocks named by ``pairs``."""
    index = {tuple(r): n for n, r in enumerate(rs.tolist())}
    out: Blocks = {}
    for rx, ry, rz, i, j in pairs.tolist():
        m = mats[index[(rx, ry, rz)]]
        out[(rx, ry, rz, i, j)] = np.ascontiguousarray(m[ao_slices[i], ao_slices[j]])
    return out


def _ao_slices(cell) -> list[slice]:
    return [slice(int(a[2]), int(a[3])) for a in cell.aoslice_by_atom()]


def blocks_from_kmesh(cell, mats_k: np.ndarray, kpts_frac: np.ndarray, pairs: np.ndarray) -> tuple[Blocks, float]:
    """Inverse Bloch transform of PySCF-order matrices (n_k, nao, nao) -> OpenMX-order blocks for ``pairs``.

    Returns the blocks (real) and the largest imaginary part dropped (a consistency diagnostic).
    """
    rs = np.unique(pairs[:, :3], axis=0)
    phase = np.exp(-2j * np.pi * rs @ np.asarray(kpts_frac).T) / len(kpts_frac)  # (n_R, n_k)
    mats_r = np.einsum("rk,kab->rab", phase, mats_k)
    max_imag = float(np.abs(mats_r.imag).max(initial=0.0))
    t = ao_transform(cell_shells(cell))
    mats_r = t @ mats_r.real @ t.T
    return _blocks_from_full(mats_r, rs, pairs, _ao_slices(cell)), max_imag


def exact_overlap_blocks(cell, pairs: np.ndarray, group: int = 128) -> Blocks:
    """S_ij(R) = <φ_i,0|φ_j,R> from two-centre integrals (no lattice sum, no aliasing), OpenMX order.

    A group of ``group`` home atoms, close in space, at a time against exactly the shifted partner atoms its
    pairs name: time and memory grow with the number of pairs, so a 10,000-atom cell never forms an
    nao × nao matrix (27 of them, 333 GB, for 9,826 Si atoms).
    """
    from pyscf import gto

    lattice = cell.lattice_vectors()  # Bohr, rows
    coords = cell.atom_coords()  # Bohr
    symbols = [cell.atom_symbol(a) for a in range(cell.natm)]
    basis = {s: cell._basis[s] for s in set(symbols)}
    to_openmx = [ao_transform([shells]) for shells in cell_shells(cell)]  # per atom, orthogonal

    def molecule(atom_ids, shifts):
        atoms = [(symbols[a], tuple(coords[a] + r @ lattice)) for a, r in zip(atom_ids, shifts)]
        z = sum(gto.charge(s) for s, _ in atoms)
        return gto.M(atom=atoms, basis=basis, unit="Bohr", spin=z % 2, verbose=0)

    frac = coords @ np.linalg.inv(lattice)
    bins = np.floor((frac % 1.0) * np.maximum(1, np.round(np.linalg.norm(lattice, axis=1) / 10.0))).astype(int)
    home = np.lexsort(bins.T[::-1])  # atoms sorted by a coarse spatial grid: a group's partners stay few
    group_of = np.empty(len(home), dtype=np.int64)
    group_of[home] = np.arange(len(home)) // group
    order = np.argsort(group_of[pairs[:, 3]], kind="stable")  # the pairs of each group, one sort for all groups
    bounds = np.searchsorted(group_of[pairs[order, 3]], np.arange(group_of.max() + 2))
    out: Blocks = {}
    for g, start in enumerate(range(0, len(home), group)):
        atoms_i = np.sort(home[start : start + group])
        sel = pairs[order[bounds[g] : bounds[g + 1]]]
        partners, which = np.unique(sel[:, [0, 1, 2, 4]], axis=0, return_inverse=True)
        mol_i = molecule(atoms_i, np.zeros((len(atoms_i), 3)))
        mol_j = molecule(partners[:, 3], partners[:, :3].astype(float))
        s = gto.intor_cross("int1e_ovlp", mol_i, mol_j)
        rows = dict(zip(atoms_i.tolist(), mol_i.aoslice_by_atom()[:, 2:4].tolist()))
        cols = mol_j.aoslice_by_atom()[:, 2:4]
        for (rx, ry, rz, i, j), k in zip(sel.tolist(), np.ravel(which).tolist()):
            (r0, r1), (c0, c1) = rows[i], cols[k]
            out[(rx, ry, rz, i, j)] = to_openmx[i] @ s[r0:r1, c0:c1] @ to_openmx[j].T
    return out


def overlap_blocks(atoms, basis_name: str = "SZV-MOLOPT-SR-GTH", radius: float = 9.5) -> Blocks:
    """Exact S_ij(R) (OpenMX order) for every pair closer than ``radius`` Å, for structures without DFT data."""
    from .settings import DFTSettings
    from .structure import build_cell

    settings = DFTSettings(basis=basis_name, radius=radius)
    cell = build_cell(atoms, settings)
    pairs = block_pairs(np.asarray(atoms.cell[:], float), np.asarray(atoms.positions, float), radius)
    return exact_overlap_blocks(cell, pairs)
