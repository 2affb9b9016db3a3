"""SO(2) convolution in the bond frame (eSCN-style), the core of DeepH-2's message passing.

With the bond along e3nn's polar axis y, the edge's spherical harmonics have only m=0 components, so
the tensor product x ⊗ Y(r̂) with radial weights reduces to linear maps that mix, for each |m|, the
(cos, sin) = (index l+m, index l-m) pairs of every degree l ≥ |m| — O(L³) instead of O(L⁶).

Parity: a map that commutes with rotations about y *and* with mirrors containing y is, per |m|>0,
``a·I`` between equal-parity channels and ``b·J`` between natural and pseudo channels, where J is the
90° rotation of the pair ((Jx)_sin = x_cos, (Jx)_cos = -x_sin). Applying J to pseudo inputs and J⁻¹ to
pseudo outputs turns all four cases into one real matrix shared by cos and sin. At m=0 the two parities
cannot mix (a mirror fixes m=0 natural components and flips m=0 pseudo ones).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import sector_mask
from .so3 import Float64Buffers, m_slices


def _j_in(c: torch.Tensor, s: torch.Tensor, nat: int):
    return torch.cat([c[..., :nat], -s[..., nat:]], -1), torch.cat([s[..., :nat], c[..., nat:]], -1)


def _j_out(c: torch.Tensor, s: torch.Tensor, nat: int):
    return torch.cat([c[..., :nat], s[..., nat:]], -1), torch.cat([s[..., :nat], -c[..., nat:]], -1)


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
        # index of each m-major row into the per-(m, l) radial scales (cos and sin share a scale)
        idx, k = [], 0
        for m, _, n in self.slices:
            rows = list(range(k, k + n))
            idx += rows if m == 0 else rows + rows
            k += n
        self.n_radial_scales = k
        self.register_buffer("radial_index", torch.tensor(idx), persistent=False)

    def forward(self, x: torch.Tensor, radial: torch.Tensor | None = None) -> torch.Tensor:
        E = x.shape[0]
        if radial is not None:
            x = x * radial[:, self.radial_index]
        out = []
        for (m, start, n), w in zip(self.slices, self.weights):
            if m == 0:
                y = x[:, :n].reshape(E, n * self.c_in) @ (w * self.mask0.to(w.dtype))
                y = y.view(E, n, self.c_out)
                y = torch.cat([y[..., : self.nat_out] + self.bias0, y[..., self.nat_out :]], -1)
                out.append(y)
                continue
            c, s = _j_in(x[:, start : start + n], x[:, start + n : start + 2 * n], self.nat_in)
            cs = torch.stack([c, s]).reshape(2 * E, n * self.c_in) @ w
            c, s = cs.view(2, E, n, self.c_out).unbind(0)
            c, s = _j_out(c, s, self.nat_out)
            out += [c, s]
        return torch.cat(out, dim=1)
