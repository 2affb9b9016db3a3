"""Equivariant building blocks on the dense ``(n, K, C)`` layout of ``so3`` (natural + pseudo channels)."""

from __future__ import annotations

import math

import torch
from torch import nn
from e3nn.math import soft_one_hot_linspace

from .so3 import Float64Buffers


def sector_mask(nat_in: int, c_in: int, nat_out: int, c_out: int) -> torch.Tensor:
    """(c_in, c_out) 1 where a weight keeps parity (natural->natural, pseudo->pseudo), else 0."""
    a = torch.arange(c_in)[:, None] < nat_in
    b = torch.arange(c_out)[None, :] < nat_out
    return (a == b).to(torch.float64)  # float64 buffers: exact after .double(); cast at use


class EquivariantLinear(Float64Buffers):
    """Channel mixing per degree l (one weight matrix per l, parity sectors kept apart); bias on 0e only."""

    def __init__(self, lmax: int, c_in: int, c_out: int, nat_in: int, nat_out: int, bias: bool = True):
        super().__init__()
        self.lmax, self.nat_out = lmax, nat_out
        self.weight = nn.Parameter(torch.randn(lmax + 1, c_in, c_out))
        self.register_buffer("mask", sector_mask(nat_in, c_in, nat_out, c_out) / math.sqrt(max(nat_in, c_in - nat_in, 1)),
                             persistent=False)
        self.bias = nn.Parameter(torch.zeros(nat_out)) if bias and nat_out > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.mask.to(self.weight.dtype)
        out = torch.cat([x[:, l * l : (l + 1) ** 2] @ w[l] for l in range(self.lmax + 1)], dim=1)
        if self.bias is not None:
            out[:, 0, : self.nat_out] = out[:, 0, : self.nat_out] + self.bias
        return out


class EquivariantLayerNorm(Float64Buffers):
    """Layer norm with ONE invariant divisor for all degrees and parity sectors (EquiformerV2-style RMS norm).

    0e channels are centred; then every component is divided by the RMS over channels of the per-degree
    mean-square, averaged over degrees (so each degree counts equally whatever its 2l+1), then scaled per
    (degree, channel), with a bias on 0e. The divisor is an O(3) invariant, so equivariance is exact.

    Why not divide each degree by its own RMS: symmetric environments force whole sectors to zero (1o and
    2e on a diamond site, 0o with a mirror, all of l=1..5 on an icosahedral site); a per-degree divisor then
    blows their rounding noise up to ~1/sqrt(eps) times the signal scale at every norm, and over the
    model's 2·layers+1 norms float32 noise reached O(1) (0.1-4 eV between equivalent atoms). With one
    divisor the noise keeps its size relative to the whole feature vector.
    """

    def __init__(self, lmax: int, channels: int, nat: int, eps: float = 1e-6):
        super().__init__()
        self.lmax, self.nat, self.eps = lmax, nat, eps
        self.scale = nn.Parameter(torch.ones(lmax + 1, channels))
        self.bias = nn.Parameter(torch.zeros(nat))
        degree = torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)], dtype=torch.float64)
        self.register_buffer("degree_weight", 1.0 / ((2 * degree + 1) * (lmax + 1)), persistent=False)
        self.register_buffer("degree_index", degree.long(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = x[:, :1, : self.nat]
        x = torch.cat([torch.cat([s0 - s0.mean(dim=-1, keepdim=True), x[:, :1, self.nat :]], dim=-1), x[:, 1:]], dim=1)
        ms = (x.pow(2).mean(dim=-1) * self.degree_weight.to(x.dtype)).sum(dim=-1)  # (n,) degree-balanced
        x = x * torch.rsqrt(ms + self.eps)[:, None, None] * self.scale[self.degree_index]
        return torch.cat([torch.cat([x[:, :1, : self.nat] + self.bias, x[:, :1, self.nat :]], dim=-1), x[:, 1:]], dim=1)


class Gate(nn.Module):
    """Gate nonlinearity: SiLU on 0e, tanh on 0o (odd keeps parity), l>0 rows scaled by sigmoid gates
    computed from 0e. ``degrees`` gives the degree of each row (row 0 must be the only l=0 row), so the
    same gate serves the e3nn layout and the m-major bond-frame layout."""

    def __init__(self, degrees, channels: int, nat: int):
        super().__init__()
        degrees = list(degrees)
        if degrees[0] != 0 or 0 in degrees[1:]:
            raise ValueError("Gate: row 0 must be the only l=0 row")
        self.lmax, self.nat, self.channels = max(degrees), nat, channels
        self.gates = nn.Linear(nat, max(self.lmax, 1) * channels)
        self.register_buffer("row_gate", torch.tensor(degrees[1:], dtype=torch.long) - 1, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, : self.nat]
        g = torch.sigmoid(self.gates(s)).view(x.shape[0], -1, self.channels)
        scalars = torch.cat([nn.functional.silu(s), torch.tanh(x[:, 0, self.nat :])], dim=-1)[:, None]
        return torch.cat([scalars, x[:, 1:] * g[:, self.row_gate]], dim=1)


def envelope(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth cutoff: 1 at r=0, 0 with vanishing 1st-3rd derivatives at r=cutoff (polynomial, p=6)."""
    x = (r / cutoff).clamp(max=1.0)
    p = 6
    return 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)


class RadialBasis(nn.Module):
    """Bessel radial basis (e3nn) times the smooth envelope: (E,) distances -> (E, num_radial)."""

    def __init__(self, cutoff: float, num_radial: int):
        super().__init__()
        self.cutoff, self.num_radial = float(cutoff), num_radial

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        rbf = soft_one_hot_linspace(r, 0.0, self.cutoff, self.num_radial, basis="bessel", cutoff=True)
        return rbf * envelope(r, self.cutoff)[:, None]


def mlp(sizes: list[int], act=nn.SiLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])
