"""Irreducible features -> Hamiltonian blocks, computing only the shell pairs both elements of a block have.

``readout.BlockReadout`` maps every block onto all M×M union-basis entries with one dense matrix. That matrix
is block sparse: union shell pair (a, b) reads only its own (2l_a+1)(2l_b+1) coupled coefficients (irreps
l = |l_a−l_b|..l_a+l_b, one channel each) and writes only its own sub-block; and for a given element pair most
sub-blocks are padding (a C–C block has 4×4 real entries of the 10×10 of an {s, s, p, d} union basis).

Here every (block, union shell pair that both elements have) is one item. All items' coupled coefficients are
gathered at once (as many numbers as the blocks have real entries), multiplied by the 3j + change-of-basis
matrix of (l_a, l_b) — the same for every shell pair with those degrees, so one matmul per (l_a, l_b) — and
scattered into the padded (n, M, M) layout the rest of the model uses. Real entries equal ``BlockReadout``'s
up to summation order; padded entries are exactly zero.
"""

from __future__ import annotations

import numpy as np
import torch

from data_prep.basis import BasisTable

from .readout import readout_table
from .so3 import Float64Buffers


def shell_pair_layout(basis: BasisTable, lmax: int):
    """Per union shell pair (a, b), grouped by (l_a, l_b): the flat feature indices k·C + c of its coupled
    coefficients, the flat block indices p·M + q of its sub-block, and per (l_a, l_b) the coupling matrix
    (coefficients -> sub-block entries) that ``readout_table`` holds for it."""
    table, n_nat, n_pse, assign = readout_table(basis, lmax)
    K, C, M = table.shape[0], table.shape[1], table.shape[2]
    flat = table.reshape(K * C, M * M).numpy()
    shells = basis.union_shells
    starts = np.cumsum([0] + [2 * l + 1 for l in shells])
    rows: dict[tuple[int, int], list[int]] = {}
    for a, b, l, sector, ch in assign:  # l ascending within a pair
        c = ch + (n_nat if sector else 0)
        rows.setdefault((a, b), []).extend(k * C + c for k in range(l * l, (l + 1) ** 2))
    classes = []  # [(l_a, l_b), [(a, b, rows, cols), ...], coupling]
    for la, lb in sorted({(shells[a], shells[b]) for a, b in rows}):
        members = []
        for (a, b), r in rows.items():
            if (shells[a], shells[b]) != (la, lb):
                continue
            p, q = np.arange(starts[a], starts[a + 1]), np.arange(starts[b], starts[b + 1])
            members.append((a, b, np.asarray(r), (p[:, None] * M + q[None, :]).ravel()))
        coupling = flat[np.ix_(members[0][2], members[0][3])]
        for _, _, r, c in members[1:]:
            if not np.array_equal(flat[np.ix_(r, c)], coupling):
                raise AssertionError(f"readout table: shell pairs with l = ({la}, {lb}) couple differently")
        classes.append(((la, lb), members, coupling))
    return classes, n_nat, n_pse, (K, C, M)


class CompactReadout(Float64Buffers):
    """(n, K, n_nat+n_pse) features and the blocks' elements z_i, z_j (n,) -> (n, M, M) blocks in OpenMX order,
    zero outside the elements' orbitals (not yet symmetrised or scaled). Same channels as ``BlockReadout``."""

    def __init__(self, basis: BasisTable, lmax: int):
        super().__init__()
        classes, self.n_nat, self.n_pse, (self.K, self.C, self.M) = shell_pair_layout(basis, lmax)
        d_max = max(len(m[2]) for _, members, _ in classes for m in members)
        pairs, rows, cols, couplings, self.classes = [], [], [], [], []
        for k, (_, members, coupling) in enumerate(classes):
            d = len(members[0][2])
            self.classes.append((len(pairs), len(pairs) + len(members), d))  # pair range, coefficients per item
            for a, b, r, c in members:
                pairs.append((a, b))
                rows.append(np.pad(r, (0, d_max - d)))
                cols.append(np.pad(c, (0, d_max - d)))
            couplings.append(np.pad(coupling, ((0, d_max - d), (0, d_max - d))))
        starts = np.cumsum([0] + [2 * l + 1 for l in basis.union_shells])
        has_shell = basis.orbital_mask_table()[:, starts[:-1]]  # (Zmax+1, S): element has union shell s
        self.register_buffer("has_shell", torch.from_numpy(has_shell), persistent=False)
        self.register_buffer("pair_a", torch.tensor([a for a, _ in pairs]), persistent=False)
        self.register_buffer("pair_b", torch.tensor([b for _, b in pairs]), persistent=False)
        self.register_buffer("pair_rows", torch.from_numpy(np.stack(rows)), persistent=False)
        self.register_buffer("pair_cols", torch.from_numpy(np.stack(cols)), persistent=False)
        self.register_buffer("coupling", torch.from_numpy(np.stack(couplings)), persistent=False)  # float64

    @property
    def channels(self) -> int:
        return self.n_nat + self.n_pse

    def forward(self, f: torch.Tensor, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        n, KC, MM = f.shape[0], self.K * self.C, self.M * self.M
        present = self.has_shell[z_i][:, self.pair_a] & self.has_shell[z_j][:, self.pair_b]  # (n, pairs)
        counts = present.sum(0).tolist()
        pair, block = present.T.nonzero(as_tuple=True)  # items sorted by pair, i.e. by (l_a, l_b) class
        src, dst, sizes, start = [], [], [], 0
        for k, (p0, p1, d) in enumerate(self.classes):
            m = sum(counts[p0:p1])
            if m:
                b, p = block[start : start + m, None], pair[start : start + m]
                src.append((b * KC + self.pair_rows[p, :d]).ravel())
                dst.append((b * MM + self.pair_cols[p, :d]).ravel())
                sizes.append((k, m, d))
                start += m
        out = f.new_zeros(n * MM)
        if not sizes:
            return out.view(n, self.M, self.M)
        x = f.reshape(-1)[torch.cat(src)]  # the coupled coefficients of every real shell pair
        y, at = [], 0
        for k, m, d in sizes:
            y.append((x[at : at + m * d].view(m, d) @ self.coupling[k, :d, :d].to(f.dtype)).ravel())
            at += m * d
        return out.index_put_((torch.cat(dst),), torch.cat(y)).view(n, self.M, self.M)
