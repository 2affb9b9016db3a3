"""Flat real-space block lists: the memory-lean form of H(R)/S(R) used for large structures.

A ``BlockList`` holds B blocks M_ij(R) as arrays instead of a dict of small matrices:
``i, j`` (B,) atoms (0-based), ``shift`` (B, 3) integer lattice vectors R (units of the cell rows),
``values`` the row-major blocks concatenated (Σ_b n_i n_j), ``n_orb`` (N,) orbitals per atom.
Same convention as ``data_prep.deeph_format``: M_ij(R) = <φ_i,0|M|φ_j,R>, OpenMX orbital order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.deeph_format import Blocks


@dataclass
class BlockList:
    n_orb: np.ndarray  # (N,)
    i: np.ndarray  # (B,)
    j: np.ndarray  # (B,)
    shift: np.ndarray  # (B, 3)
    values: np.ndarray  # (Σ n_i n_j,)

    @property
    def n_blocks(self) -> int:
        return len(self.i)

    @property
    def block_sizes(self) -> np.ndarray:
        return self.n_orb[self.i] * self.n_orb[self.j]

    @classmethod
    def from_blocks(cls, blocks: Blocks, n_orb) -> "BlockList":
        keys = sorted(blocks)
        n_orb = np.asarray(n_orb, dtype=np.int64)
        arr = np.array(keys, dtype=np.int64).reshape(-1, 5)
        values = np.concatenate([np.asarray(blocks[k], dtype=np.float64).ravel() for k in keys]) if keys else np.zeros(0)
        return cls(n_orb, arr[:, 3].copy(), arr[:, 4].copy(), arr[:, :3].copy(), values)

    @classmethod
    def from_record(cls, rec: dict, which: str = "h") -> "BlockList":
        """On-site blocks then edge blocks of an LMDB record (``data_prep.records`` schema)."""
        n_orb = np.asarray(rec["orbital_counts"], dtype=np.int64)
        n = len(n_orb)
        ei, shift = rec["edge_index"], rec["cell_shift"]
        return cls(
            n_orb,
            np.concatenate([np.arange(n), ei[0]]).astype(np.int64),
            np.concatenate([np.arange(n), ei[1]]).astype(np.int64),
            np.concatenate([np.zeros((n, 3), dtype=np.int64), shift]).astype(np.int64),
            np.concatenate([rec[f"{which}_node"], rec[f"{which}_edge"]]).astype(np.float64),
        )

    def to_blocks(self) -> Blocks:
        start = np.concatenate([[0], np.cumsum(self.block_sizes)])
        ni, nj = self.n_orb[self.i], self.n_orb[self.j]
        return {
            (int(r[0]), int(r[1]), int(r[2]), int(a), int(b)): self.values[start[k] : start[k + 1]].reshape(ni[k], nj[k])
            for k, (a, b, r) in enumerate(zip(self.i, self.j, self.shift))
        }


def supercell_blocks(bl: BlockList, reps) -> BlockList:
    """Blocks of the (n1, n2, n3) supercell of a crystal, from the blocks of its unit cell (exact).

    Supercell atom ``c * N + a`` is unit-cell atom ``a`` in cell c (c runs over the supercell's cells in
    C order of (c1, c2, c3)); block (i, j, R) of unit cell c links to cell c + R, which is cell
    (c + R) mod reps of the supercell translated by the supercell vector floor((c + R) / reps).
    """
    reps = np.asarray(reps, dtype=np.int64)
    cells = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), axis=-1).reshape(-1, 3)
    n_cells, n_atoms = len(cells), len(bl.n_orb)

    def cell_index(c):
        return (c[..., 0] * reps[1] + c[..., 1]) * reps[2] + c[..., 2]

    target = cells[:, None, :] + bl.shift[None, :, :]  # (C, B, 3)
    new_shift = np.floor_divide(target, reps)
    wrapped = target - new_shift * reps
    i = (cell_index(cells)[:, None] * n_atoms + bl.i[None, :]).ravel()
    j = (cell_index(wrapped) * n_atoms + bl.j[None, :]).ravel()
    return BlockList(np.tile(bl.n_orb, n_cells), i, j, new_shift.reshape(-1, 3), np.tile(bl.values, n_cells))


def supercell_geometry(cell, positions, numbers, reps):
    """Cell rows, positions and numbers of the supercell, atoms ordered as in ``supercell_blocks``."""
    reps = np.asarray(reps, dtype=np.int64)
    cells = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), axis=-1).reshape(-1, 3)
    pos = (cells @ np.asarray(cell))[:, None, :] + np.asarray(positions)[None, :, :]
    return reps[:, None] * np.asarray(cell), pos.reshape(-1, 3), np.tile(np.asarray(numbers), len(cells))


__all__ = ["BlockList", "supercell_blocks", "supercell_geometry"]
