"""Output scale and on-site shift per element pair and shell pair, set from training-set statistics.

The heads produce O(1) numbers, while DFT blocks range from ~0.01 eV (far hoppings) to ~20 eV (on-site
levels, which also carry the DFT energy zero). ``BlockScale`` maps the raw blocks to

    H_ii[a, b] = shift_Z[a, b] · 1 + scale_Z[a, b] · raw_ii[a, b]         (on-site, element Z = Z_i)
    H_ij[a, b] = hop_{Z_i Z_j}[a, b] · f_{Z_i Z_j}(r_ij) · raw_ij[a, b]     (hoppings, bond length r_ij)

with a, b union shells (``basis.union_shells``) and 1 the identity of an l_a = l_b sub-block. A scalar
per sub-block and a shift along the identity (the only rotation-invariant part of a block) keep exact
O(3) equivariance; symmetric on-site tables and hop_{Z_j Z_i} = hop_{Z_i Z_j}ᵀ keep H_ij(R) = H_ji(-R)ᵀ
bit for bit. ``block_statistics`` computes the tables (a JSON dict, the models' ``block_stats`` kwarg):

    shift_Z[a, b] = mean over atoms of Z of tr(H_ii[a, b]) / (2l+1)          (l_a = l_b, else 0)
    scale_Z[a, b] = RMS over atoms and entries of H_ii[a, b] - shift_Z[a, b] · 1
    f_{Z Z'}(r) = exp(β_{Z Z'} · max(r - r0_{Z Z'}, 0))                     (``hopping_decay``: [β, r0])
    hop_{Z Z'}[a, b] = RMS over edges (both directions) and entries of H_ij[a, b] / f_{Z Z'}(r_ij)

each scale floored at ``min_scale`` eV, so that a sub-block that happens to vanish in the training set is not
frozen at zero. Hoppings fall off roughly exponentially with the bond length (C-C blocks: ~1.4 eV RMS at
1-2 Å, ~1 meV at 6-7 Å), so with one scale per pair the far blocks, most of the edges, would be read from
the last digits of the heads' output; f follows the fall-off (β ≤ 0 per Å: a least-squares line through
the log of each edge's RMS; r0 the pair's shortest bond, so hop is the scale of the nearest neighbours and
f ≤ 1 on the training data) and the heads stay O(1) at every distance. Below r0 f stays 1: continuing the
exponential there amplified the heads' output on bonds shorter than any the pair had in training (an H2
molecule at 0.74 Å against H-H training bonds of 2 Å and more: x40, a 41 eV error; measured on the
universal-mini's held-out compositions, docs/training.md).
Without ``hopping_decay`` (older checkpoints, ``block_stats=auto_flat``) f = 1. f is a function of |r|, the
same for (i, j) and (j, i): the symmetries are kept.
"""

from __future__ import annotations

import numpy as np
import torch

from data_prep.basis import BasisTable, element_symbol
from data_prep.torch_data import block_mask, edge_vectors

from .so3 import Float64Buffers

MIN_SCALE_EV = 0.01


def union_shell_of_orbital(basis: BasisTable) -> np.ndarray:
    """(M,) index into ``basis.union_shells`` of every union orbital."""
    return np.repeat(np.arange(len(basis.union_shells)), [2 * l + 1 for l in basis.union_shells])


def _same_m(basis: BasisTable) -> np.ndarray:
    """(M, M) 1 where two union orbitals have the same l and the same position (m) in their shells."""
    shells = basis.union_shells
    ls = np.repeat(shells, [2 * l + 1 for l in shells])
    pos = np.concatenate([np.arange(2 * l + 1) for l in shells])
    return ((ls[:, None] == ls[None, :]) & (pos[:, None] == pos[None, :])).astype(np.float64)


def _table(value, shape, what: str) -> np.ndarray:
    t = np.asarray(value, dtype=np.float64)
    if t.shape != shape:
        raise ValueError(f"block_stats {what}: shape {t.shape}, expected {shape} (union shells × union shells)")
    if not np.isfinite(t).all():
        raise ValueError(f"block_stats {what}: non-finite entries")
    return t


class BlockScale(Float64Buffers):
    """Applies ``block_stats`` (see module docstring) to symmetrised raw blocks; identity when None."""

    def __init__(self, basis: BasisTable, block_stats: dict | None = None):
        super().__init__()
        self.enabled = block_stats is not None
        if not self.enabled:
            return
        unknown = set(block_stats) - {"onsite_shift", "onsite_scale", "hopping_scale", "hopping_decay"}
        if unknown:
            raise ValueError(f"block_stats: unknown keys {sorted(unknown)}")
        elements = list(basis.elements)
        S, shells = len(basis.union_shells), np.asarray(basis.union_shells)
        index = -np.ones(max(elements) + 1, dtype=np.int64)
        index[elements] = np.arange(len(elements))
        shift = np.zeros((len(elements), S, S))
        scale = np.ones((len(elements), S, S))
        hop = np.ones((len(elements), len(elements), S, S))
        hop_set = np.zeros((len(elements), len(elements)), dtype=bool)

        def element(key: str, what: str) -> int:
            z = int(key)
            if z < 0 or z >= len(index) or index[z] < 0:
                raise ValueError(f"block_stats {what}: element {key} is not in the basis table {basis.to_dict()}")
            return int(index[z])

        def element_pair(key: str, what: str) -> tuple[int, int]:
            parts = key.split("-")
            if len(parts) != 2:
                raise ValueError(f"block_stats {what}: key {key!r} is not 'Zi-Zj'")
            return element(parts[0], what), element(parts[1], what)

        for key, value in block_stats.get("onsite_shift", {}).items():
            t = _table(value, (S, S), f"onsite_shift[{key}]")
            if np.any(t[shells[:, None] != shells[None, :]] != 0) or not np.array_equal(t, t.T):
                raise ValueError(f"block_stats onsite_shift[{key}]: must be symmetric and zero where l_a != l_b "
                                 "(only the identity part of a block is rotation invariant)")
            shift[element(key, "onsite_shift")] = t
        for key, value in block_stats.get("onsite_scale", {}).items():
            t = _table(value, (S, S), f"onsite_scale[{key}]")
            if not np.array_equal(t, t.T):
                raise ValueError(f"block_stats onsite_scale[{key}]: must be symmetric (H_ii is)")
            scale[element(key, "onsite_scale")] = t
        for key, value in block_stats.get("hopping_scale", {}).items():
            a, b = element_pair(key, "hopping_scale")
            t = _table(value, (S, S), f"hopping_scale[{key}]")
            for (p, q, m) in ((a, b, t), (b, a, t.T)):
                if hop_set[p, q] and not np.array_equal(hop[p, q], m):
                    raise ValueError(f"block_stats hopping_scale[{key}]: the reverse pair must be its transpose "
                                     "(H_ij(R) = H_ji(-R)ᵀ)")
                hop[p, q], hop_set[p, q] = m, True
        decay = np.zeros((len(elements), len(elements), 2))  # [β, r0]: f = 1
        for key, value in block_stats.get("hopping_decay", {}).items():
            a, b = element_pair(key, "hopping_decay")
            t = _table(value, (2,), f"hopping_decay[{key}]")
            if t[0] > 0:
                raise ValueError(f"block_stats hopping_decay[{key}]: β = {t[0]} per Å must be <= 0")
            decay[a, b] = decay[b, a] = t
        shell_of = torch.from_numpy(union_shell_of_orbital(basis))
        self.register_buffer("hopping_decay", torch.from_numpy(decay), persistent=False)
        self.register_buffer("element_index", torch.from_numpy(index), persistent=False)
        self.register_buffer("shell_of", shell_of, persistent=False)
        self.register_buffer("same_m", torch.from_numpy(_same_m(basis)), persistent=False)
        self.register_buffer("onsite_shift", torch.from_numpy(shift), persistent=False)
        self.register_buffer("onsite_scale", torch.from_numpy(scale), persistent=False)
        self.register_buffer("hopping_scale", torch.from_numpy(hop), persistent=False)

    def _expand(self, t: torch.Tensor, dtype) -> torch.Tensor:
        """(n, S, S) per shell pair -> (n, M, M) per orbital pair."""
        return t[:, self.shell_of][:, :, self.shell_of].to(dtype)

    def forward(self, h_node, h_edge, z, edge_index, dist):
        """``dist``: (E,) bond lengths, Å."""
        if not self.enabled:
            return h_node, h_edge
        k = self.element_index[z]
        shift = self._expand(self.onsite_shift[k], h_node.dtype) * self.same_m.to(h_node.dtype)
        h_node = self._expand(self.onsite_scale[k], h_node.dtype) * h_node + shift
        ki, kj = k[edge_index[0]], k[edge_index[1]]
        beta, r0 = self.hopping_decay[ki, kj].to(h_edge.dtype).unbind(-1)
        f = torch.exp(beta * (dist.to(h_edge.dtype) - r0).clamp(min=0.0))
        h_edge = self._expand(self.hopping_scale[ki, kj], h_edge.dtype) * (f[:, None, None] * h_edge)
        return h_node, h_edge


MAX_DECAY_PER_A = 4.0  # |β| cap: a fit on a few edges must not make f explode at short bonds


def hopping_decay(graphs, basis: BasisTable, min_edges: int = 8) -> dict[str, list[float]]:
    """``hopping_decay`` tables {"Zi-Zj": [β, r0]} (module docstring) of ``BlockData`` graphs: per element pair
    a least-squares line log RMS(H_ij) = c + β·r over its edges, β clipped to [-MAX_DECAY_PER_A, 0], r0 its
    shortest edge; pairs with fewer than ``min_edges`` edges or less than 0.5 Å between their shortest and
    longest get β = 0."""
    acc: dict[tuple[int, int], list[torch.Tensor]] = {}
    for g in graphs:
        z, (i, j) = g.atomic_numbers, g.edge_index
        mask = block_mask(basis, z, g.edge_index)
        he = g.h_edge.double() * mask
        log_rms = 0.5 * torch.log((he.square().sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)).clamp(min=1e-16))
        r = edge_vectors(g).double().norm(dim=-1)
        a, b = torch.minimum(z[i], z[j]), torch.maximum(z[i], z[j])
        for pair in torch.unique(torch.stack([a, b], 1), dim=0).tolist():
            sel = (a == pair[0]) & (b == pair[1])
            acc.setdefault(tuple(pair), []).append(torch.stack([r[sel], log_rms[sel]], 1))
    out = {}
    for (a, b), parts in sorted(acc.items()):
        r, y = torch.cat(parts).unbind(1)
        r0 = float(r.min())
        beta = 0.0
        if len(r) >= min_edges and float(r.max() - r0) >= 0.5:
            dr = r - r.mean()
            beta = float((dr * (y - y.mean())).sum() / dr.square().sum())
            beta = min(max(beta, -MAX_DECAY_PER_A), 0.0)
        out[f"{a}-{b}"] = [beta, r0]
    return out


def block_statistics(graphs, basis: BasisTable, min_scale: float = MIN_SCALE_EV, decay: bool = True,
                     combine: bool = True) -> dict:
    """``block_stats`` (JSON dict, see module docstring) from an iterable of ``BlockData`` graphs or batches
    with ``h_node`` / ``h_edge`` (union basis, OpenMX order, eV), e.g. the training split; ``decay=False``:
    no ``hopping_decay`` (one scale per pair at every distance); ``combine=False``: only the pairs the graphs
    bond, without ``combine_unseen_pairs``."""
    elements = list(basis.elements)
    S = len(basis.union_shells)
    shells = np.asarray(basis.union_shells)
    shell_of = torch.from_numpy(union_shell_of_orbital(basis))
    onehot = torch.nn.functional.one_hot(shell_of, S).double()  # (M, S)
    same_m = torch.from_numpy(_same_m(basis))
    degen = torch.from_numpy((2 * shells + 1).astype(np.float64))
    same_l = torch.from_numpy(shells[:, None] == shells[None, :])
    nE = max(elements) + 1
    trace = torch.zeros(nE, S, S, dtype=torch.float64)
    n_atoms = torch.zeros(nE, dtype=torch.float64)
    node_sq = torch.zeros(nE, S, S, dtype=torch.float64)
    edge_sq = torch.zeros(nE, nE, S, S, dtype=torch.float64)
    n_edges = torch.zeros(nE, nE, dtype=torch.float64)

    def per_shell(x):  # (n, M, M) -> (n, S, S) sums over each sub-block
        return onehot.T @ x @ onehot

    graphs = list(graphs)
    if not graphs:
        raise ValueError("block_statistics: no graphs")
    for g in graphs:
        if getattr(g, "h_node", None) is None:
            raise ValueError(f"block_statistics: graph {getattr(g, 'structure_id', '?')!r} has no h_node/h_edge blocks")
        unknown = sorted(set(g.atomic_numbers.tolist()) - set(elements))
        if unknown:
            raise ValueError(f"block_statistics: elements {[element_symbol(u) for u in unknown]} of "
                             f"{getattr(g, 'structure_id', '?')!r} are not in the basis table")
    decays = hopping_decay(graphs, basis) if decay else {}
    decay_table = torch.zeros(nE, nE, 2, dtype=torch.float64)
    for key, (beta, r0) in decays.items():
        a, b = map(int, key.split("-"))
        decay_table[a, b] = decay_table[b, a] = torch.tensor([beta, r0], dtype=torch.float64)
    for g in graphs:
        z = g.atomic_numbers
        hn = g.h_node.double() * block_mask(basis, z)
        tr = per_shell(hn * same_m)
        trace.index_add_(0, z, tr)
        n_atoms.index_add_(0, z, torch.ones(len(z), dtype=torch.float64))
        # squares of H - mean·1 need the mean first: accumulate Σ H² and Σ tr, combine below
        node_sq.index_add_(0, z, per_shell(hn.square()))
        i, j = g.edge_index
        he = g.h_edge.double() * block_mask(basis, z, g.edge_index)
        beta, r0 = decay_table[z[i], z[j]].unbind(-1)
        he = he / torch.exp(beta * (edge_vectors(g).double().norm(dim=-1) - r0))[:, None, None]
        pair = z[i] * nE + z[j]
        edge_sq.view(nE * nE, S, S).index_add_(0, pair, per_shell(he.square()))
        n_edges.view(-1).index_add_(0, pair, torch.ones(len(pair), dtype=torch.float64))

    out = {"onsite_shift": {}, "onsite_scale": {}, "hopping_scale": {}}
    if decay:
        out["hopping_decay"] = decays
    for z in elements:
        if n_atoms[z] == 0:
            continue
        has = torch.from_numpy(basis.orbital_mask_table(max(elements))[z]).double() @ onehot > 0  # (S,)
        mean = torch.where(same_l, trace[z] / (n_atoms[z] * degen[None, :]), 0.0)
        # Σ over atoms and entries of (H - mean·1)² = Σ H² - 2·mean·Σ tr + n·(2l+1)·mean²
        sq = node_sq[z] - 2 * mean * trace[z] + n_atoms[z] * degen[None, :] * mean.square()
        mean, sq = 0.5 * (mean + mean.T), 0.5 * (sq + sq.T)  # DFT on-site blocks are symmetric only to ~1e-10
        size = n_atoms[z] * degen[:, None] * degen[None, :]
        rms = (sq.clamp(min=0) / size).sqrt().clamp(min=min_scale)
        known = has[:, None] & has[None, :]
        out["onsite_shift"][str(z)] = torch.where(known, mean, 0.0).tolist()
        out["onsite_scale"][str(z)] = torch.where(known, rms, 1.0).tolist()
    for a in elements:
        for b in elements:
            if b < a:
                continue
            n = n_edges[a, b] + n_edges[b, a]
            if n == 0:
                continue
            sq = edge_sq[a, b] + edge_sq[b, a].T
            has_a = torch.from_numpy(basis.orbital_mask_table(max(elements))[a]).double() @ onehot > 0
            has_b = torch.from_numpy(basis.orbital_mask_table(max(elements))[b]).double() @ onehot > 0
            rms = (sq / (n * degen[:, None] * degen[None, :])).sqrt().clamp(min=min_scale)
            out["hopping_scale"][f"{a}-{b}"] = torch.where(has_a[:, None] & has_b[None, :], rms, 1.0).tolist()
    if combine:
        combine_unseen_pairs(out, elements)
    return out


def combine_unseen_pairs(stats: dict, elements) -> None:
    """Tables for the element pairs with no training edge (a composition the training set never had), in place:
    the geometric mean of the two homonuclear models, hop_ab[a, b] = sqrt(hop_aa[a, a] · hop_bb[b, b]) and
    f_ab(r) = sqrt(f_aa(r) · f_bb(r)), so β_ab = (β_aa + β_bb) / 2 and β_ab·r0_ab = (β_aa·r0_aa + β_bb·r0_bb) / 2.
    Without it an unseen pair kept scale 1 eV and no fall-off: the network's output for a pair it never saw
    reached the blocks at full size, and grew as training went on. Pairs whose elements lack homonuclear
    edges stay unset (scale 1 eV)."""
    hop, decay = stats["hopping_scale"], stats.get("hopping_decay")
    for a in elements:
        for b in elements:
            key, aa, bb = f"{a}-{b}", f"{a}-{a}", f"{b}-{b}"
            if b <= a or key in hop or aa not in hop or bb not in hop:
                continue
            da, db = np.diag(np.asarray(hop[aa])), np.diag(np.asarray(hop[bb]))
            hop[key] = np.sqrt(np.outer(da, db)).tolist()
            if decay is not None and aa in decay and bb in decay:
                (beta_a, r0_a), (beta_b, r0_b) = decay[aa], decay[bb]
                beta = 0.5 * (beta_a + beta_b)
                r0 = (beta_a * r0_a + beta_b * r0_b) / (2 * beta) if beta != 0 else 0.5 * (r0_a + r0_b)
                decay[key] = [beta, r0]


def extend_block_stats(old: dict, new: dict, elements) -> dict:
    """``old`` tables (a trained model's) with the entries of ``new`` (another training set's) that ``old`` lacks,
    then ``combine_unseen_pairs`` over ``elements``: what a model's tables become when fine-tuning adds elements.
    The model's own entries are kept as they are, since its weights were trained against them."""
    out = {table: dict(entries) for table, entries in old.items()}
    for table, entries in new.items():
        if table in out:
            out[table].update({key: value for key, value in entries.items() if key not in out[table]})
    combine_unseen_pairs(out, elements)
    return out

