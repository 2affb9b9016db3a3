"""Parts shared by DeepH-2 and the DeepH-E3 baseline: graph inputs, element/edge embeddings, block heads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from data_prep.basis import BasisTable
from data_prep.torch_data import block_mask, edge_vectors

from .block_scale import BlockScale
from .layers import RadialBasis, envelope, mlp
from .compact_readout import CompactReadout
from .readout import BlockReadout

MAX_Z = 118  # universal element embeddings: every element, no per-dataset input layer
# Equal outputs, no parameters: "padded" is one dense matmul, "compact" reads only real shell pairs.
READOUTS = {"compact": CompactReadout, "padded": BlockReadout}


@dataclass
class GraphInputs:
    z: torch.Tensor  # (N,)
    edge_index: torch.Tensor  # (2, E)
    edge_rev: torch.Tensor  # (E,)
    vec: torch.Tensor  # (E, 3) bond vectors r_j + R·cell - r_i, computed here from positions
    dist: torch.Tensor  # (E,)
    env: torch.Tensor  # (E,) smooth cutoff envelope

    @classmethod
    def from_batch(cls, data, cutoff: float) -> "GraphInputs":
        vec = edge_vectors(data)
        dist = vec.norm(dim=-1)
        return cls(data.atomic_numbers, data.edge_index, data.edge_rev, vec, dist, envelope(dist, cutoff))


def as_basis(basis) -> BasisTable:
    """Accept BasisTable.to_dict() form (checkpoints, configs) or a BasisTable."""
    return basis if isinstance(basis, BasisTable) else BasisTable.from_dict(dict(basis))


class EdgeEmbedding(nn.Module):
    """Invariant edge scalars: radial basis of |r| with the two elements' embeddings -> (E, hidden)."""

    def __init__(self, cutoff: float, num_radial: int, hidden: int, z_dim: int = 16):
        super().__init__()
        self.rbf = RadialBasis(cutoff, num_radial)
        self.z_src = nn.Embedding(MAX_Z + 1, z_dim)
        self.z_dst = nn.Embedding(MAX_Z + 1, z_dim)
        self.net = mlp([num_radial + 2 * z_dim, hidden, hidden])

    def forward(self, g: GraphInputs) -> torch.Tensor:
        i, j = g.edge_index
        return self.net(torch.cat([self.rbf(g.dist), self.z_src(g.z[i]), self.z_dst(g.z[j])], dim=-1))


class BlockHeads(nn.Module):
    """Node / edge readout features -> symmetric on-site blocks and exactly reverse-transposed hoppings,
    scaled (and on-site shifted) per element pair and shell pair by ``block_stats`` (``block_scale``)."""

    def __init__(self, basis: BasisTable, lmax: int, block_stats: dict | None = None, readout: str = "padded"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout {readout!r}: choose one of {', '.join(READOUTS)}")
        self.basis = basis
        self.readout = READOUTS[readout](basis, lmax)
        self.scale = BlockScale(basis, block_stats)

    @property
    def channels(self) -> int:
        return self.readout.channels

    @property
    def nat(self) -> int:
        return self.readout.n_nat

    def forward(self, node_feat: torch.Tensor, edge_feat: torch.Tensor, g: GraphInputs) -> dict:
        i, j = g.edge_index
        h_node = self.readout(node_feat, g.z, g.z)
        h_edge = self.readout(edge_feat, g.z[i], g.z[j])
        # H_ii(0) is symmetric and H_ij(R) = H_ji(-R)ᵀ, exactly: average each block with its partner.
        h_node = 0.5 * (h_node + h_node.transpose(1, 2))
        h_edge = 0.5 * (h_edge + h_edge[g.edge_rev].transpose(1, 2))
        h_node, h_edge = self.scale(h_node, h_edge, g.z, g.edge_index, g.dist)
        node_mask = block_mask(self.basis, g.z)
        edge_mask = block_mask(self.basis, g.z, g.edge_index)
        return {"h_node": h_node * node_mask, "h_edge": h_edge * edge_mask}


def check_elements_known(basis: BasisTable, z: torch.Tensor) -> None:
    known = torch.zeros(MAX_Z + 1, dtype=torch.bool, device=z.device)
    known[list(basis.elements)] = True
    if z.numel() and (z.max() > MAX_Z or not bool(known[z].all())):
        bad = basis.unknown(z.tolist())
        raise ValueError(f"atomic numbers {bad} are not in the model's basis table {basis.to_dict()}")
