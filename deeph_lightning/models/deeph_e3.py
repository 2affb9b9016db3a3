"""DeepH-E3-style baseline: message passing with full e3nn tensor products x_j ⊗ Y(r̂_ij).

Same features (natural + pseudo channels up to lmax), embeddings, gates, norms and block heads as
``DeepH2``; only the convolution differs: an ``e3nn.o3.TensorProduct`` over every allowed path
(l_in, l_sh, l_out) with per-edge radial weights ('uvu'), followed by an ``o3.Linear`` — the
O(L⁶)-per-edge operation DeepH-2's bond-frame SO(2) convolution replaces. Used as the accuracy/speed
baseline (``build_model("deeph_e3", ...)``).
"""

from __future__ import annotations

import torch
from torch import nn
from e3nn import o3
from torch_geometric.utils import scatter

from .common import MAX_Z, BlockHeads, EdgeEmbedding, GraphInputs, as_basis, check_elements_known
from .layers import EquivariantLayerNorm, EquivariantLinear, Gate
from .so3 import degree_of_component, num_coeffs


def feature_irreps(lmax: int, nat: int, pse: int) -> o3.Irreps:
    out = []
    for l in range(lmax + 1):
        out += [(nat, (l, (-1) ** l))] if nat else []
        out += [(pse, (l, -((-1) ** l)))] if pse else []
    return o3.Irreps(out)


def to_flat(x: torch.Tensor, lmax: int, nat: int) -> torch.Tensor:
    """(n, K, C) dense layout -> e3nn flat layout of ``feature_irreps`` (mul-major inside each irrep)."""
    parts = []
    for l in range(lmax + 1):
        xl = x[:, l * l : (l + 1) ** 2].transpose(1, 2)  # (n, C, 2l+1)
        parts += [xl[:, :nat].reshape(len(x), -1), xl[:, nat:].reshape(len(x), -1)]
    return torch.cat(parts, dim=1)


def from_flat(f: torch.Tensor, lmax: int, nat: int, channels: int) -> torch.Tensor:
    out, k, n = [], 0, len(f)
    for l in range(lmax + 1):
        d = 2 * l + 1
        a = f[:, k : k + nat * d].reshape(n, nat, d)
        k += nat * d
        b = f[:, k : k + (channels - nat) * d].reshape(n, channels - nat, d)
        k += (channels - nat) * d
        out.append(torch.cat([a, b], dim=1).transpose(1, 2))
    return torch.cat(out, dim=1)


class TPConv(nn.Module):
    """x_j ⊗ Y(r̂_ij) over all parity-allowed paths with radial weights, then a linear back to features."""

    def __init__(self, lmax, channels, nat, hidden_radial):
        super().__init__()
        self.lmax, self.nat, self.channels = lmax, nat, channels
        irreps_in = feature_irreps(lmax, nat, channels - nat)
        irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        mid, instructions = [], []
        for i_in, (mul, ir_in) in enumerate(irreps_in):
            for i_sh, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out.l <= lmax:
                        instructions.append((i_in, i_sh, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, o3.Irreps(mid), instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = nn.Linear(hidden_radial, self.tp.weight_numel)
        self.linear = o3.Linear(o3.Irreps(mid), irreps_in)

    def forward(self, x_src, sh, edge_scalars):
        f = self.tp(to_flat(x_src, self.lmax, self.nat), sh, self.radial(edge_scalars))
        return from_flat(self.linear(f), self.lmax, self.nat, self.channels)


class ConvBlock(nn.Module):
    def __init__(self, lmax, channels, nat, hidden_radial):
        super().__init__()
        self.norm = EquivariantLayerNorm(lmax, channels, nat)
        self.conv = TPConv(lmax, channels, nat, hidden_radial)
        self.self_lin = EquivariantLinear(lmax, channels, channels, nat, nat)
        self.gate = Gate(degree_of_component(lmax), channels, nat)
        self.out = EquivariantLinear(lmax, channels, channels, nat, nat)

    def forward(self, x, g: GraphInputs, sh, edge_scalars, deg):
        h = self.norm(x)
        i, j = g.edge_index
        msg = self.conv(h[j], sh, edge_scalars) * g.env[:, None, None]
        agg = scatter(msg, i, dim=0, dim_size=x.shape[0], reduce="sum") / deg.sqrt()[:, None, None]
        return x + self.out(self.gate(agg + self.self_lin(h)))


class DeepHE3(nn.Module):
    """Baseline with the same constructor arguments as ``DeepH2`` (mmax and heads are accepted and unused;
    ``onsite_edges`` adds the same sum over bonds to the on-site features, from a second edge output)."""

    def __init__(self, basis: dict, cutoff: float, lmax: int = 4, mmax: int | None = None, channels: int = 64,
                 pseudo_channels: int = 32, layers: int = 4, heads: int | None = None, num_radial: int = 16,
                 hidden_radial: int = 64, ffn_channels: int | None = None,
                 block_stats: dict | None = None, readout: str = "padded", onsite_edges: bool = False):
        super().__init__()
        self.basis = as_basis(basis)
        self.cutoff, self.lmax, self.nat = float(cutoff), lmax, channels
        C = channels + pseudo_channels
        self.C = C
        self.node_embedding = nn.Embedding(MAX_Z + 1, channels)
        self.edge_embedding = EdgeEmbedding(cutoff, num_radial, hidden_radial)
        self.blocks = nn.ModuleList(ConvBlock(lmax, C, channels, hidden_radial) for _ in range(layers))
        self.norm = EquivariantLayerNorm(lmax, C, channels)
        self.heads = BlockHeads(self.basis, lmax, block_stats, readout)
        R, nat_r = self.heads.channels, self.heads.nat
        self.node_out = EquivariantLinear(lmax, C, R, channels, nat_r)
        self.edge_conv = TPConv(lmax, C, channels, hidden_radial)
        self.edge_self = EquivariantLinear(lmax, C, C, channels, channels)
        self.edge_gate = Gate(degree_of_component(lmax), C, channels)
        self.edge_out = EquivariantLinear(lmax, C, R, channels, nat_r)
        self.edge_onsite = EquivariantLinear(lmax, C, R, channels, nat_r) if onsite_edges else None

    def forward(self, data) -> dict:
        check_elements_known(self.basis, data.atomic_numbers)
        g = GraphInputs.from_batch(data, self.cutoff)
        N = g.z.shape[0]
        sh = o3.spherical_harmonics(list(range(self.lmax + 1)), g.vec, normalize=True, normalization="component")
        edge_scalars = self.edge_embedding(g)
        deg = scatter(torch.ones_like(g.dist), g.edge_index[0], dim=0, dim_size=N, reduce="sum").clamp(min=1)
        x = g.vec.new_zeros(N, num_coeffs(self.lmax), self.C)
        x[:, 0, : self.nat] = self.node_embedding(g.z)
        for block in self.blocks:
            x = block(x, g, sh, edge_scalars, deg)
        x = self.norm(x)
        i, j = g.edge_index
        e = self.edge_gate(self.edge_conv(x[j], sh, edge_scalars) + self.edge_self(x[i]))
        node_feat = self.node_out(x)
        if self.edge_onsite is not None:
            bonds = scatter(self.edge_onsite(e) * g.env[:, None, None], i, dim=0, dim_size=N, reduce="sum")
            node_feat = node_feat + bonds / deg.sqrt()[:, None, None]
        return self.heads(node_feat, self.edge_out(e), g)
