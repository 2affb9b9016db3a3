"""Periodic block graph: every (i, j, R) with |r_j + R·cell - r_i| < cutoff, both directions.

On-site blocks (i, i, 0) are the nodes; every other pair, including an atom with its own periodic images
(i, i, R≠0), is an edge. Edge e carries the integer lattice shift R_e (in units of the lattice vectors,
cell rows), so the bond vector is  r_j - r_i + R_e · cell  and the block is H_ij(R_e).
``edge_rev[e]`` is the index of the reverse edge (j, i, -R), used to make H_ij(R) = H_ji(-R)ᵀ exact.

Built on vesin's cell-list neighbour search (vectorised C++; handles cells much smaller than the cutoff,
slabs and molecules through per-direction periodicity).
"""

from __future__ import annotations

import numpy as np

from .geometry import GeometryValueError, check_geometry_values


class GraphError(ValueError):
    pass


def _non_periodic_box(positions: np.ndarray, pbc: np.ndarray, cell: np.ndarray) -> np.ndarray:
    # vesin needs a box even along non-periodic directions; any finite, non-degenerate one will do.
    if pbc.all():
        return cell
    box = np.array(cell, dtype=np.float64, copy=True)
    extent = np.ptp(positions, axis=0).max(initial=0.0) + 1.0
    for d in range(3):
        if not pbc[d] and np.linalg.norm(box[d]) < 1e-8:
            box[d] = 0.0
            box[d, d] = extent
    if abs(np.linalg.det(box)) < 1e-8:
        box = np.eye(3) * extent
    return box


MIN_DISTANCE = 0.1  # Å; closer atoms (or periodic images) are an input error
# A structure's first shell: bonds up to this factor times its shortest bond. Below the second shell of
# bcc/CsCl (2/√3 = 1.155) and of the other catalogue prototypes, above the spread of rattled cells.
FIRST_SHELL = 1.1


def first_shell_mask(lengths: np.ndarray) -> np.ndarray:
    """(N,) bool: the bonds of one structure no longer than ``FIRST_SHELL`` times its shortest (all False when
    there are none). ``torch_data.first_shell_edges`` is the same rule per graph of a torch batch."""
    lengths = np.asarray(lengths, dtype=float)
    return lengths <= FIRST_SHELL * lengths.min() if len(lengths) else np.zeros(0, dtype=bool)


def neighbor_graph(
    cell: np.ndarray, positions: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``edge_index`` (2, E) int64, ``cell_shift`` (E, 3) int64, ``edge_rev`` (E,) int64.

    Edges are sorted by (i, j, Rx, Ry, Rz), so the result does not depend on the search's order.
    Raises ``GraphError`` for overlapping atoms (closer than ``MIN_DISTANCE``).
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise GraphError(f"cutoff must be a positive, finite radius in Å, got {cutoff}")
    try:
        check_geometry_values(cell, positions, pbc, "structure")
    except GeometryValueError as err:
        raise GraphError(str(err).removeprefix("structure: ")) from None
    n = len(positions)
    if n == 0:
        raise GraphError("structure has no atoms")
    box = _non_periodic_box(positions, pbc, cell)
    import vesin  # imports torch: deferred so that command lines start fast

    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shift, dist = nl.compute(positions, box, [bool(p) for p in pbc], "ijSd")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    shift = shift.astype(np.int64)
    keep = ~((i == j) & np.all(shift == 0, axis=1)) & (dist < cutoff)
    i, j, shift, dist = i[keep], j[keep], shift[keep], dist[keep]
    if len(dist) and dist.min() < MIN_DISTANCE:
        k = int(np.argmin(dist))
        raise GraphError(
            f"atoms {i[k] + 1} and {j[k] + 1} (1-based, image R={shift[k].tolist()}) are {dist[k]:.3g} Å apart: "
            f"overlapping atoms (minimum {MIN_DISTANCE} Å); check the positions and their units (Å)"
        )
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, i))
    i, j, shift = i[order], j[order], shift[order]
    edge_rev = reverse_edges(np.stack([i, j]), shift)
    return np.stack([i, j]), shift, edge_rev


def reverse_edges(edge_index: np.ndarray, cell_shift: np.ndarray) -> np.ndarray:
    """Index of edge (j, i, -R) for every edge (i, j, R); raises if some edge has no reverse."""
    i, j = edge_index
    m = max(int(np.abs(cell_shift).max(initial=0)) * 2 + 1, 1)
    n = int(max(edge_index.max(initial=0), 0)) + 1
    s = cell_shift + m // 2

    def code(a, b, r):
        return ((a * n + b) * m + r[:, 0]) * m * m + r[:, 1] * m + r[:, 2]

    fwd = code(i, j, s)
    rev = code(j, i, -cell_shift + m // 2)
    order = np.argsort(fwd, kind="stable")
    pos = np.searchsorted(fwd[order], rev)
    pos = np.clip(pos, 0, len(fwd) - 1)
    found = fwd[order][pos] == rev if len(fwd) else np.zeros(0, dtype=bool)
    if not np.all(found):
        bad = int(np.flatnonzero(~found)[0])
        raise GraphError(f"edge {bad} (i={i[bad]}, j={j[bad]}, R={cell_shift[bad].tolist()}) has no reverse edge")
    return order[pos].astype(np.int64)


def edge_vectors_np(cell: np.ndarray, positions: np.ndarray, edge_index: np.ndarray, cell_shift: np.ndarray):
    i, j = edge_index
    return positions[j] - positions[i] + cell_shift @ cell


def block_bond_lengths(keys: np.ndarray, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """(N,) bond lengths (Å) of DeepH block keys (N, 5) = (Rx, Ry, Rz, i, j), atom j in cell R."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1, 5)
    vectors = edge_vectors_np(np.asarray(cell, dtype=float), np.asarray(positions, dtype=float), keys[:, 3:].T,
                              keys[:, :3])
    return np.linalg.norm(vectors, axis=1)
