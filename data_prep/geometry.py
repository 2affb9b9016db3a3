"""Checks of a structure's numbers before any neighbour search: finite, non-degenerate, well-conditioned.

A neighbour search over a lattice whose periodic vectors are nearly dependent visits a huge number of
images (minutes to hours before any other error), and NaN/inf coordinates crash it. Lattice vectors are rows
(Å); only the periodic ones are checked (a molecule or slab may have zero vectors along the others).
"""

from __future__ import annotations

import numpy as np

MIN_PLANE_SPACING = 0.1  # Å, distance between neighbouring lattice planes along a periodic direction
MAX_CONDITION = 1e4  # longest periodic vector / smallest plane spacing: beyond, Niggli-reduce the cell


class GeometryValueError(ValueError):
    """Lattice or positions that no neighbour search should be run on."""


def check_geometry_values(cell, positions, pbc, cell_where: str, positions_where: str | None = None) -> None:
    """Raise ``GeometryValueError`` naming ``cell_where``/``positions_where`` for unusable numbers."""
    positions_where = positions_where or cell_where
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(positions, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    if cell.shape != (3, 3):
        raise GeometryValueError(f"{cell_where}: expected 3 lattice vectors of 3 components, got shape {cell.shape}")
    if pbc.shape != (3,):
        raise GeometryValueError(f"{cell_where}: pbc needs one flag per lattice vector (3), got {pbc.tolist()}")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise GeometryValueError(f"{positions_where}: expected N x 3 positions, got shape {positions.shape}")
    if not np.all(np.isfinite(cell)):
        raise GeometryValueError(f"{cell_where}: the lattice vectors contain NaN or inf")
    bad = np.flatnonzero(~np.all(np.isfinite(positions), axis=1))
    if bad.size:
        raise GeometryValueError(f"{positions_where}: the position of atom {bad[0] + 1} (1-based) contains NaN or inf")
    periodic = cell[pbc]
    if not len(periodic):
        return
    lengths = np.linalg.norm(periodic, axis=1)
    gram = periodic @ periodic.T
    if lengths.min() < MIN_PLANE_SPACING or abs(np.linalg.det(gram)) < 1e-12 * np.prod(lengths**2):
        raise GeometryValueError(
            f"{cell_where}: degenerate cell: the periodic lattice vectors (lengths "
            f"{np.round(lengths, 4).tolist()} Å) are zero or linearly dependent")
    spacing = 1.0 / np.sqrt(np.diag(np.linalg.inv(gram)))
    condition = lengths.max() / spacing.min()
    if spacing.min() < MIN_PLANE_SPACING or condition > MAX_CONDITION:
        raise GeometryValueError(
            f"{cell_where}: badly conditioned lattice (lattice planes {spacing.min():.3g} Å apart for vectors up to "
            f"{lengths.max():.3g} Å long): nearly dependent lattice vectors; use a reduced (e.g. Niggli) cell")
