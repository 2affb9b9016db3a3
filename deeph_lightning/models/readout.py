"""Irreducible features -> Hamiltonian blocks in the union basis (OpenMX order).

For every pair of union shells (a, b) the block H_ab (in e3nn's basis) is assembled from irreps
l = |l_a - l_b| .. l_a + l_b with Wigner-3j symbols; its parity is (-1)^(l_a+l_b), so component l is a
natural-parity feature when l_a+l_b+l is even and a pseudo-parity one otherwise. The map
features -> block is linear and fixed, so it is precomputed as one matrix, with the e3nn -> OpenMX change
of basis (the only place the model does it) folded in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3

from data_prep.basis import BasisTable, openmx_to_e3nn

from .so3 import Float64Buffers, float64_constants, num_coeffs


def union_change_of_basis(union_shells) -> np.ndarray:
    """Block-diagonal U (M, M) with v_e3nn = U · v_openmx over all union shells."""
    M = sum(2 * l + 1 for l in union_shells)
    u = np.zeros((M, M))
    k = 0
    for l in union_shells:
        u[k : k + 2 * l + 1, k : k + 2 * l + 1] = openmx_to_e3nn(l)
        k += 2 * l + 1
    return u


def e3nn_to_openmx_blocks(blocks: torch.Tensor, union_shells) -> torch.Tensor:
    """(..., M, M) blocks in e3nn order -> OpenMX order: Uᵀ · H · U."""
    u = torch.as_tensor(union_change_of_basis(union_shells), dtype=blocks.dtype, device=blocks.device)
    return u.T @ blocks @ u


def openmx_to_e3nn_blocks(blocks: torch.Tensor, union_shells) -> torch.Tensor:
    """(..., M, M) blocks in OpenMX order -> e3nn order: U · H · Uᵀ."""
    u = torch.as_tensor(union_change_of_basis(union_shells), dtype=blocks.dtype, device=blocks.device)
    return u @ blocks @ u.T


def readout_channels(basis: BasisTable):
    """Per (l, parity sector) how many output channels the blocks need, and the (a, b, l, sector, channel)
    assignment. sector 0 = natural, 1 = pseudo."""
    shells = basis.union_shells
    count: dict[tuple[int, int], int] = {}
    assign = []
    for a, la in enumerate(shells):
        for b, lb in enumerate(shells):
            for l in range(abs(la - lb), la + lb + 1):
                sector = (la + lb + l) % 2
                ch = count.get((l, sector), 0)
                count[(l, sector)] = ch + 1
                assign.append((a, b, l, sector, ch))
    n_nat = max((c for (l, s), c in count.items() if s == 0), default=0)
    n_pse = max((c for (l, s), c in count.items() if s == 1), default=0)
    return n_nat, n_pse, assign


def readout_table(basis: BasisTable, lmax: int) -> tuple[torch.Tensor, int, int, list]:
    """The fixed linear map features -> blocks: float64 (K, C, M, M) with C = n_nat + n_pse readout channels
    (OpenMX order), plus ``n_nat``, ``n_pse`` and the (a, b, l, sector, channel) assignment."""
    need = 2 * basis.lmax
    if lmax < need:
        raise ValueError(
            f"feature lmax={lmax} cannot represent blocks of the basis (shells up to l={basis.lmax} need "
            f"irreps up to l={need}); raise lmax to at least {need}"
        )
    shells = basis.union_shells
    starts = np.cumsum([0] + [2 * l + 1 for l in shells])
    n_nat, n_pse, assign = readout_channels(basis)
    M, K = basis.n_union, num_coeffs(lmax)
    t = np.zeros((K, n_nat + n_pse, M, M))
    for a, b, l, sector, ch in assign:
        la, lb = shells[a], shells[b]
        n_paths = la + lb - abs(la - lb) + 1
        scale = math.sqrt((2 * la + 1) * (2 * lb + 1) / n_paths)
        with float64_constants():
            w3j = o3.wigner_3j(la, lb, l, dtype=torch.float64).numpy() * scale  # (2la+1, 2lb+1, 2l+1)
        c = ch + (n_nat if sector else 0)
        t[l * l : (l + 1) ** 2, c, starts[a] : starts[a + 1], starts[b] : starts[b + 1]] = w3j.transpose(2, 0, 1)
    return e3nn_to_openmx_blocks(torch.from_numpy(t), shells), n_nat, n_pse, assign


class BlockReadout(Float64Buffers):
    """(n, K, n_nat+n_pse) features -> (n, M, M) blocks in OpenMX order (not yet symmetrised or masked):
    one dense matmul onto every union-basis entry (``compact_readout.CompactReadout`` computes only the real
    ones)."""

    def __init__(self, basis: BasisTable, lmax: int):
        super().__init__()
        t, self.n_nat, self.n_pse, _ = readout_table(basis, lmax)
        K, C, M = t.shape[0], t.shape[1], t.shape[2]
        self.M = M
        self.register_buffer("table", t.reshape(K * C, M * M), persistent=False)  # float64; cast at use

    @property
    def channels(self) -> int:
        return self.n_nat + self.n_pse

    def forward(self, f: torch.Tensor, z_i: torch.Tensor | None = None, z_j: torch.Tensor | None = None) -> torch.Tensor:
        """``z_i``, ``z_j`` (the blocks' elements) are accepted for ``CompactReadout``'s signature and unused."""
        return (f.reshape(f.shape[0], -1) @ self.table.to(f.dtype)).view(-1, self.M, self.M)
