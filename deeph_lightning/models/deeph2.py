"""DeepH-2: equivariant transformer with SO(2) convolutions in local bond frames.

Per edge the features of both atoms are rotated into the frame whose polar axis (e3nn's y) is the bond,
mixed by radial-weighted SO(2) linear maps (``so2.SO2Linear``), and rotated back; messages are weighted by
multi-head attention computed from the invariant channels. Blocks: layer norm -> SO(2) attention ->
residual -> layer norm -> gated feed-forward -> residual. Heads: node features -> on-site blocks, one more
SO(2) convolution per edge -> hopping blocks (``common.BlockHeads``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from data_prep.basis import BasisTable

from .common import MAX_Z, as_basis, BlockHeads, EdgeEmbedding, GraphInputs, check_elements_known
from .layers import EquivariantLayerNorm, EquivariantLinear, Gate
from .so2 import SO2Linear
from .so3 import EdgeFrame, degree_of_component, m_major_order, num_coeffs


def edge_spans(n_edges: int, edge_chunk: int | None) -> list[slice]:
    """Consecutive edge ranges of at most ``edge_chunk`` edges (one range if None): inference on a large
    structure holds one range's per-edge features at a time instead of every edge's."""
    if not edge_chunk or n_edges <= edge_chunk:
        return [slice(0, n_edges)]
    return [slice(a, min(a + edge_chunk, n_edges)) for a in range(0, n_edges, edge_chunk)]


def add_to_nodes(total: torch.Tensor | None, index: torch.Tensor, values: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """``total`` plus ``values`` summed onto nodes ``index``, in place (``total`` None: a new node tensor).
    In place because a node-sized sum per edge chunk would make a chunked pass O(N·E)."""
    if total is None:
        total = values.new_zeros((n_nodes,) + values.shape[1:])
    return total.index_add_(0, index, values.to(total.dtype))


def filled_by_chunks(fn, spans: list[slice]) -> torch.Tensor:
    """``torch.cat([fn(sl) for sl in spans])`` written into one tensor as the chunks come (cat would briefly
    hold every chunk twice)."""
    first = fn(spans[0])
    if len(spans) == 1:
        return first
    out = first.new_empty((spans[-1].stop,) + first.shape[1:])
    out[spans[0]] = first
    for sl in spans[1:]:
        out[sl] = fn(sl)
    return out


def pair_in_frame(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, nat: int, rot) -> torch.Tensor:
    """The features of both atoms of each edge, channel-wise (natural channels of i and j, then pseudo
    channels of i and j), rotated into the bond frame."""
    xn, xp = x[..., :nat], x[..., nat:]
    return rot.to_frame(torch.cat([xn[i], xn[j]], dim=-1), pseudo=torch.cat([xp[i], xp[j]], dim=-1))


class SO2Attention(nn.Module):
    def __init__(self, lmax, mmax, channels, nat, heads, hidden_radial):
        super().__init__()
        if nat % heads or (channels - nat) % heads:
            raise ValueError(f"channels ({nat} natural, {channels - nat} pseudo) must divide into {heads} heads")
        self.nat, self.heads = nat, heads
        self.conv1 = SO2Linear(lmax, mmax, 2 * channels, channels, 2 * nat, nat)
        self.radial = nn.Linear(hidden_radial, self.conv1.n_radial_scales * 2 * channels)
        frame_degrees = [degree_of_component(lmax)[k] for k in m_major_order(lmax, mmax)]
        self.gate = Gate(frame_degrees, channels, nat)
        self.attn = nn.Sequential(nn.SiLU(), nn.Linear(nat, heads))
        self.conv2 = SO2Linear(lmax, mmax, channels, channels, nat, nat)
        self.proj = EquivariantLinear(lmax, channels, channels, nat, nat)
        head = torch.cat([torch.arange(nat) * heads // nat, torch.arange(channels - nat) * heads // max(channels - nat, 1)])
        self.register_buffer("head_of_channel", head, persistent=False)

    def forward(self, x, g: GraphInputs, rot, edge_scalars, edge_chunk: int | None = None):
        i, j = g.edge_index
        spans = edge_spans(len(i), edge_chunk)

        def conv1(sl, r):
            xe = pair_in_frame(x, i[sl], j[sl], self.nat, r)
            rad = self.radial(edge_scalars[sl]).view(len(xe), self.conv1.n_radial_scales, -1)
            return self.conv1(xe, rad)

        # attention weights need every edge of a node (softmax over them): a first pass over the chunks keeps
        # only the logits, the second recomputes each chunk's features
        whole = conv1(spans[0], rot[spans[0]]) if len(spans) == 1 else None  # one span: computed once, used twice
        features = conv1 if whole is None else (lambda sl, r: whole)
        logits = torch.cat([self.attn(features(sl, rot[sl])[:, 0, : self.nat]) for sl in spans])
        alpha = softmax(logits, i, num_nodes=x.shape[0]) * g.env[:, None]
        out = None
        for sl in spans:
            r = rot[sl]  # per-degree rotations: builds the chunk's matrices, once for both directions
            v = self.conv2(self.gate(features(sl, r))) * alpha[sl][:, self.head_of_channel][:, None, :]
            out = add_to_nodes(out, i[sl], r.from_frame(v, self.nat), x.shape[0])
        return self.proj(out)


class FeedForward(nn.Module):
    def __init__(self, lmax, channels, nat, hidden):
        super().__init__()
        nat_h = hidden * nat // channels
        self.lin1 = EquivariantLinear(lmax, channels, hidden, nat, nat_h)
        self.gate = Gate(degree_of_component(lmax), hidden, nat_h)
        self.lin2 = EquivariantLinear(lmax, hidden, channels, nat_h, nat)

    def forward(self, x):
        return self.lin2(self.gate(self.lin1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, lmax, mmax, channels, nat, heads, hidden_radial, ffn_channels):
        super().__init__()
        self.norm1 = EquivariantLayerNorm(lmax, channels, nat)
        self.attention = SO2Attention(lmax, mmax, channels, nat, heads, hidden_radial)
        self.norm2 = EquivariantLayerNorm(lmax, channels, nat)
        self.ffn = FeedForward(lmax, channels, nat, ffn_channels)

    def forward(self, x, g, rot, edge_scalars, edge_chunk=None):
        x = x + self.attention(self.norm1(x), g, rot, edge_scalars, edge_chunk)
        return x + self.ffn(self.norm2(x))


class DeepH2(nn.Module):
    """DeepH-2 Hamiltonian model. All constructor arguments are plain JSON values.

    basis: BasisTable.to_dict() form; cutoff: neighbour cutoff (Å) used to build the graphs;
    lmax: feature degree (≥ 2·max orbital l); mmax: SO(2) truncation (≤ lmax);
    channels / pseudo_channels: natural / pseudo-parity channels per degree; layers; heads;
    num_radial: Bessel functions; hidden_radial: edge-scalar width; ffn_channels: feed-forward width;
    block_stats: output scale/shift per element pair and shell pair (``block_scale.block_statistics``
    of the training set), None = raw network output; readout: "padded" (one dense matmul onto the union basis)
    or "compact" (only the shell pairs both elements of a block have), equal outputs, no parameters either way;
    onsite_edges: on-site blocks also get a sum over the atom's bonds of one more SO(2) output of the edge head
    (the crystal-field / neighbour-potential part of H_ii is a sum over neighbours, which attention averages).
    """

    def __init__(self, basis: dict | BasisTable, cutoff: float, lmax: int = 4, mmax: int = 2, channels: int = 64,
                 pseudo_channels: int = 32, layers: int = 4, heads: int = 4, num_radial: int = 16,
                 hidden_radial: int = 64, ffn_channels: int | None = None,
                 block_stats: dict | None = None, readout: str = "padded", onsite_edges: bool = False):
        super().__init__()
        self.basis = as_basis(basis)
        self.cutoff, self.lmax, self.mmax = float(cutoff), lmax, mmax
        self.nat, C = channels, channels + pseudo_channels
        self.frame = EdgeFrame(lmax, lmax)  # full m range; the m-major layout makes truncation a prefix
        self.n_frame = len(m_major_order(lmax, mmax))
        self.node_embedding = nn.Embedding(MAX_Z + 1, channels)
        self.edge_embedding = EdgeEmbedding(cutoff, num_radial, hidden_radial)
        self.degree_embedding = nn.Linear(hidden_radial, (lmax + 1) * channels)
        ffn = ffn_channels or 2 * C
        self.blocks = nn.ModuleList(
            TransformerBlock(lmax, mmax, C, channels, heads, hidden_radial, ffn) for _ in range(layers)
        )
        self.norm = EquivariantLayerNorm(lmax, C, channels)
        self.heads = BlockHeads(self.basis, lmax, block_stats, readout)
        R, nat_r = self.heads.channels, self.heads.nat
        self.node_out = EquivariantLinear(lmax, C, R, channels, nat_r)
        self.edge_conv = SO2Linear(lmax, lmax, 2 * C, C, 2 * channels, channels)
        self.edge_radial = nn.Linear(hidden_radial, self.edge_conv.n_radial_scales * 2 * C)
        self.edge_gate = Gate([degree_of_component(lmax)[k] for k in m_major_order(lmax, lmax)], C, channels)
        self.edge_out = SO2Linear(lmax, lmax, C, R, channels, nat_r)
        self.edge_onsite = SO2Linear(lmax, lmax, C, R, channels, nat_r) if onsite_edges else None

    def forward(self, data, edge_chunk: int | None = None) -> dict:
        """``edge_chunk``: process edges this many at a time (same result; inference memory on large structures)."""
        check_elements_known(self.basis, data.atomic_numbers)
        g = GraphInputs.from_batch(data, self.cutoff)
        N, K = g.z.shape[0], num_coeffs(self.lmax)
        i, j = g.edge_index
        spans = edge_spans(len(i), edge_chunk)
        rot_full = self.frame(g.vec, per_degree=len(spans) > 1)
        rot = rot_full.rows(self.n_frame)
        edge_scalars = self.edge_embedding(g)

        x = g.vec.new_zeros(N, K, self.blocks[0].norm1.scale.shape[1])
        x[:, 0, : self.nat] = self.node_embedding(g.z)
        # initial l>0 features: radial/element-dependent m=0 components of each bond, rotated back
        deg = scatter(torch.ones_like(g.dist), i, dim=0, dim_size=N, reduce="sum").clamp(min=1)
        bonds = None
        for sl in spans:
            m0 = self.degree_embedding(edge_scalars[sl]).view(-1, self.lmax + 1, self.nat) * g.env[sl, None, None]
            bonds = add_to_nodes(bonds, i[sl], rot_full[sl].rows(self.lmax + 1).from_frame(m0), N)  # m = 0 rows
        x[:, :, : self.nat] = x[:, :, : self.nat] + bonds / deg.sqrt()[:, None, None]

        for block in self.blocks:
            x = block(x, g, rot, edge_scalars, edge_chunk)
        x = self.norm(x)

        onsite = None

        def edge_features(sl):
            nonlocal onsite
            r = rot_full[sl]
            xe = pair_in_frame(x, i[sl], j[sl], self.nat, r)
            rad = self.edge_radial(edge_scalars[sl]).view(len(xe), self.edge_conv.n_radial_scales, -1)
            hidden = self.edge_gate(self.edge_conv(xe, rad))
            if self.edge_onsite is not None:
                bond = r.from_frame(self.edge_onsite(hidden), self.edge_onsite.nat_out) * g.env[sl, None, None]
                onsite = add_to_nodes(onsite, i[sl], bond, N)
            return r.from_frame(self.edge_out(hidden), self.edge_out.nat_out)

        edge_feat = filled_by_chunks(edge_features, spans)
        node_feat = self.node_out(x)
        if onsite is not None:
            node_feat = node_feat + onsite / deg.sqrt()[:, None, None]
        return self.heads(node_feat, edge_feat, g)
