"""SO(2) convolution in the bond frame (eSCN-style), the core of DeepH-2's message passing.

With the bond along e3nn's polar axis y, the edge's spherical harmonics have only m=0 components, so
the tensor product x ⊗ Y(r̂) with radial weights reduces to linear maps that mix, for each |m|, the
(cos, sin) = (index l+m, index l-m) pairs of every degree l ≥ |m| — O(L³) instead of O(L⁶).

Parity: a map that commutes with rotations about y *and* with mirrors containing y is, per |m|>0,
``a·I`` between equal-parity channels and ``b·J`` between natural and pseudo channels, where J is the
90° rotation of the pair ((Jx)_sin = x_cos, (Jx)_cos = -x_sin). Pseudo channels are therefore kept in the
bond frame with J applied (``so3.EdgeRotation`` rotates them with J·D): then all four cases are one real
matrix shared by cos and sin, and a bond-frame layer is a plain matmul per |m|. The gates between SO(2)
layers scale cos and sin of a degree alike, so they commute with J. At m=0 the two parities cannot mix
(a mirror fixes m=0 natural components and flips m=0 pseudo ones).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import sector_mask
from .so3 import Float64Buffers, m_slices


class SO2Linear(Float64Buffers):
    """(E, K', c_in) bond-frame features (m-major, up to mmax) -> (E, K', c_out), optionally scaled per
    edge by ``radial`` (E, n_radial_scales, c_in) where n_radial_scales = Σ_m (lmax-m+1)."""

    def __init__(self, lmax: int, mmax: int, c_in: int, c_out: int, nat_in: int, nat_out: int):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.c_in, self.c_out, self.nat_in, self.nat_out = c_in, c_out, nat_in, nat_out
        self.slices = m_slices(lmax, mmax)
        self.weights = nn.ParameterList()
        for m, _, n in self.slices:
            self.weights.append(nn.Parameter(torch.randn(n * c_in, n * c_out) / math.sqrt(n * c_in)))
        n0 = lmax + 1
        self.register_buffer("mask0", sector_mask(nat_in, c_in, nat_out, c_out).repeat(n0, n0), persistent=False)
        self.bias0 = nn.Parameter(torch.zeros(n0, nat_out))
        # rows of each m block (cos and sin for m > 0) and its per-l radial scales (cos and sin share one)
        self.block_rows = [n if m == 0 else 2 * n for m, _, n in self.slices]
        self.radial_rows = [n for _, _, n in self.slices]
        self.n_radial_scales = sum(self.radial_rows)

    def forward(self, x: torch.Tensor, radial: torch.Tensor | None = None) -> torch.Tensor:
        """(E, K', c_in) -> (E, K', c_out); pseudo channels in and out with J applied (module docstring)."""
        E = x.shape[0]
        # one split per input instead of a slice per block: a slice's backward fills a zero tensor of the
        # whole input, a split's is one cat
        blocks = torch.split(x, self.block_rows, dim=1)
        scales = torch.split(radial, self.radial_rows, dim=1) if radial is not None else [None] * len(blocks)
        out = []
        for (m, _, n), w, xb, r in zip(self.slices, self.weights, blocks, scales):
            if m == 0:
                if r is not None:
                    xb = xb * r
                y = (xb.reshape(E, n * self.c_in) @ (w * self.mask0.to(w.dtype))).view(E, n, self.c_out)
                out.append(y + nn.functional.pad(self.bias0, (0, self.c_out - self.nat_out)))
                continue
            xb = xb.view(E, 2, n, self.c_in)
            if r is not None:
                xb = xb * r[:, None]
            # cos and sin rows through the same matrix
            out.append((xb.reshape(2 * E, n * self.c_in) @ w).view(E, 2 * n, self.c_out))
        return torch.cat(out, dim=1)
