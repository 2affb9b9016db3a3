"""Irreducible features -> Hamiltonian blocks, reading only the irreps of shell pairs both elements have.

``readout.BlockReadout`` multiplies every block's features by the whole (K·C, M·M) readout matrix. Each of its
rows (one irrep component of one channel) belongs to one union shell pair (a, b), and for a given element pair
most shell pairs are padding: a C–C block in an {s, s, p, d} union basis needs 16 of the table's 200 rows
(lmax 4) and has 16 of its 100 entries.

Here blocks are grouped by the shell sets of their two elements (elements with the same union shells, e.g. C
and Si with {s, p}, share a group; the number of groups is fixed by the basis, not by the batch). A group's
blocks read only the rows of their real shell pairs: one column gather and one (rows × M·M) matmul per group,
whose padded columns are zero. Real entries equal ``BlockReadout``'s up to summation order; padded entries are
exactly zero.
"""

from __future__ import annotations

import numpy as np
import torch

from data_prep.basis import BasisTable

from .readout import readout_table
from .so3 import Float64Buffers


def shell_pair_rows(assign, n_nat: int, channels: int) -> dict[tuple[int, int], list[int]]:
    """Per union shell pair (a, b): the rows k·C + c of the readout table (irrep components and channels)
    that feed its sub-block."""
    rows: dict[tuple[int, int], list[int]] = {}
    for a, b, l, sector, ch in assign:
        c = ch + (n_nat if sector else 0)
        rows.setdefault((a, b), []).extend(k * channels + c for k in range(l * l, (l + 1) ** 2))
    return rows


class CompactReadout(Float64Buffers):
    """(n, K, n_nat+n_pse) features and the blocks' elements z_i, z_j (n,) -> (n, M, M) blocks in OpenMX order,
    zero outside the elements' orbitals (not yet symmetrised or scaled). Same channels as ``BlockReadout``."""

    def __init__(self, basis: BasisTable, lmax: int):
        super().__init__()
        table, self.n_nat, self.n_pse, assign = readout_table(basis, lmax)
        K, C, M = table.shape[0], table.shape[1], table.shape[2]
        self.M = M
        flat = table.reshape(K * C, M * M)
        starts = np.cumsum([0] + [2 * l + 1 for l in basis.union_shells])
        has_shell = basis.orbital_mask_table()[:, starts[:-1]]  # (Zmax+1, S): element has union shell s
        shell_sets = sorted({tuple(np.flatnonzero(has_shell[z])) for z in basis.elements})
        signature = np.zeros(len(has_shell), dtype=np.int64)
        for z in basis.elements:
            signature[z] = shell_sets.index(tuple(np.flatnonzero(has_shell[z])))
        pair_rows = shell_pair_rows(assign, self.n_nat, C)
        rows, self.row_ranges = [], []  # per group (shell set of z_i, shell set of z_j), in that order
        for set_i in shell_sets:
            for set_j in shell_sets:
                r = [k for a in set_i for b in set_j for k in pair_rows[(a, b)]]
                self.row_ranges.append((sum(map(len, rows)), sum(map(len, rows)) + len(r)))
                rows.append(r)
        rows = torch.tensor([k for r in rows for k in r])
        self.n_sets = len(shell_sets)
        self.register_buffer("signature", torch.from_numpy(signature), persistent=False)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("table", flat[rows], persistent=False)  # float64 (Σ group rows, M·M); cast at use

    @property
    def channels(self) -> int:
        return self.n_nat + self.n_pse

    def forward(self, f: torch.Tensor, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        n = f.shape[0]
        if not n:
            return f.new_zeros(0, self.M, self.M)
        group = self.signature[z_i] * self.n_sets + self.signature[z_j]
        counts = torch.bincount(group, minlength=self.n_sets**2).tolist()
        table = self.table.to(f.dtype)
        if max(counts) == n:  # one group: no reordering
            r0, r1 = self.row_ranges[counts.index(n)]
            return (f.reshape(n, -1).index_select(1, self.rows[r0:r1]) @ table[r0:r1]).view(n, self.M, self.M)
        order = torch.argsort(group)
        parts = f.reshape(n, -1).index_select(0, order).split(counts)
        y = [part.index_select(1, self.rows[r0:r1]) @ table[r0:r1]
             for part, (r0, r1) in zip(parts, self.row_ranges) if len(part)]
        back = torch.empty_like(order)
        back[order] = torch.arange(n, device=order.device)
        return torch.cat(y).index_select(0, back).view(n, self.M, self.M)
