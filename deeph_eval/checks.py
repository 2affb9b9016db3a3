"""Sanity checks on inputs that would otherwise give silent nonsense (wrong units, mixed-up files)."""

from __future__ import annotations

import numpy as np
from ase.data import covalent_radii

from data_prep.basis import element_symbol
from data_prep.deeph_format import MATRIX_FILES, DeepHFormatError, DeepHStructure, check_hermitian
from data_prep.graph import GraphError, neighbor_graph

TOO_CLOSE = 0.5  # × (r_cov,i + r_cov,j): atoms on top of each other
TOO_FAR = 1.85  # × (r_cov,i + r_cov,j): even the closest pair is not bonded (Si in Bohr gives 2.0)


class GeometryError(ValueError):
    pass


def check_geometry(cell, positions, numbers, pbc, where: str) -> None:
    """Raise ``GeometryError`` if interatomic distances are absurd for Å (typical of Bohr or fractional input)."""
    numbers = np.asarray(numbers, dtype=int)
    positions = np.asarray(positions, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if len(numbers) == 1 and not pbc.any():
        return
    radii = covalent_radii[numbers]
    cutoff = 2.0 * TOO_FAR * radii.max() + 0.1
    try:
        edge_index, shift, _ = neighbor_graph(np.asarray(cell, dtype=float), positions, pbc, cutoff)
    except GraphError as err:
        raise GeometryError(f"{where}: {err}") from None
    if edge_index.shape[1] == 0:
        raise GeometryError(
            f"{where}: no two atoms are within {cutoff:.2f} Å of each other; the structure looks like it is in "
            "Bohr (or another unit), not Å"
        )
    i, j = edge_index
    d = np.linalg.norm(positions[j] - positions[i] + shift @ np.asarray(cell, dtype=float), axis=1)
    ratio = d / (radii[i] + radii[j])
    k = int(np.argmin(ratio))
    pair = (f"atoms {i[k] + 1} ({element_symbol(numbers[i[k]])}) and {j[k] + 1} ({element_symbol(numbers[j[k]])}) "
            f"are {d[k]:.3f} Å apart, a bond would be about {radii[i[k]] + radii[j[k]]:.2f} Å")
    if ratio[k] < TOO_CLOSE:
        raise GeometryError(f"{where}: {pair}; are the positions fractional, or is the lattice in the wrong unit?")
    if ratio[k] > TOO_FAR:
        raise GeometryError(f"{where}: closest {pair}; is the structure in Bohr instead of Å?")


def structure_difference(a: DeepHStructure, b: DeepHStructure, tol: float) -> str | None:
    """How two structures differ (species, lattice, positions beyond ``tol`` Å up to lattice translations), or None."""
    if a.numbers.tolist() != b.numbers.tolist():
        return f"species differ ({a.n_atoms} atoms {_formula(a.numbers)} vs {b.n_atoms} atoms {_formula(b.numbers)})"
    dcell = float(np.abs(np.asarray(a.cell) - np.asarray(b.cell)).max())
    if dcell > tol:
        return f"lattice vectors differ by up to {dcell:.3g} Å"
    frac = (np.asarray(b.positions) - np.asarray(a.positions)) @ np.linalg.inv(np.asarray(a.cell))
    periodic = np.asarray(a.pbc, dtype=bool)
    frac[:, periodic] -= np.round(frac[:, periodic])  # the same atom in another cell is the same atom
    shift = np.linalg.norm(frac @ np.asarray(a.cell), axis=1)
    if shift.max() > tol:
        k = int(np.argmax(shift))
        return f"atom {k + 1} ({element_symbol(int(a.numbers[k]))}) is {shift[k]:.3g} Å away"
    return None


def _formula(numbers) -> str:
    symbols = [element_symbol(int(z)) for z in numbers]
    return "".join(f"{s}{symbols.count(s) if symbols.count(s) > 1 else ''}" for s in dict.fromkeys(symbols))


def checked_pair(st: DeepHStructure):
    """(H blocks, S blocks or None) after Hermiticity checks with errors naming the file."""
    where = st.source or "structure"
    h_file, s_file = MATRIX_FILES[st.layout]
    if not st.hamiltonians:
        raise DeepHFormatError(f"{where}: no Hamiltonian blocks ({h_file} missing or empty)")
    check_hermitian(st.hamiltonians, f"{where}/{h_file}")
    if st.overlaps is None:
        if not st.isorthogonal:
            raise DeepHFormatError(f"{where}: no overlap blocks ({s_file}) and info.json does not say the basis is orthogonal")
        return st.hamiltonians, None
    check_hermitian(st.overlaps, f"{where}/{s_file}", tol=1e-6)
    on_site = [k for k in st.overlaps if k[:3] == (0, 0, 0) and k[3] == k[4]]
    if len(on_site) != st.n_atoms:
        raise DeepHFormatError(f"{where}/{s_file}: on-site blocks S_ii(0) present for {len(on_site)} of {st.n_atoms} atoms")
    return st.hamiltonians, st.overlaps
