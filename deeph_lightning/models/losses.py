"""Losses on masked Hamiltonian blocks (model output dict vs a batch of ``BlockData``).

The energy zero of a DFT Hamiltonian is arbitrary: H and H + c·S (S the overlap) describe the same
physics (bands shift rigidly by c). ``gauge_invariant_loss`` removes, per structure, the shift c that best
aligns prediction and target (closed-form least squares), so the model is not penalised for it.
"""

from __future__ import annotations

import torch

from data_prep.basis import BasisTable
from data_prep.torch_data import block_mask, first_shell_edges

from .gauge import gauge_free_residuals, structure_mu

KEYS = ("node", "edge")


def _masked_pairs(out: dict, batch, basis: BasisTable, which: str = "h"):
    z, ei = batch.atomic_numbers, batch.edge_index
    graph = getattr(batch, "batch", None)
    graph = torch.zeros_like(z) if graph is None else graph
    for key, mask, owner in (("node", block_mask(basis, z), graph), ("edge", block_mask(basis, z, ei), graph[ei[0]])):
        yield key, out[f"h_{key}"], batch[f"{which}_{key}"], mask.to(out[f"h_{key}"].dtype), owner


def edge_weights(batch, first_shell_weight: float = 1.0):
    """Per-edge loss weight (E, 1, 1): ``first_shell_weight`` on each structure's nearest-neighbour bonds
    (``first_shell_edges``), 1 elsewhere; a plain 1.0 when it is 1."""
    if first_shell_weight == 1.0:
        return 1.0
    w = 1.0 + (first_shell_weight - 1.0) * first_shell_edges(batch).to(batch.pos.dtype)
    return w.view(-1, 1, 1)


def entry_count(batch, basis: BasisTable, onsite_weight: float = 1.0, first_shell_weight: float = 1.0) -> torch.Tensor:
    """The (weighted) number of real orbital entries a loss averages over: on-site entries count
    ``onsite_weight`` times, first-shell hopping entries ``first_shell_weight`` times."""
    return _weighted_count(batch, basis, onsite_weight, edge_weights(batch, first_shell_weight))


def _weighted_count(batch, basis: BasisTable, onsite_weight: float, w_edge) -> torch.Tensor:
    z, ei = batch.atomic_numbers, batch.edge_index
    return onsite_weight * block_mask(basis, z).sum() + (w_edge * block_mask(basis, z, ei)).sum()


def _masked_mean(out: dict, batch, basis: BasisTable, elementwise, onsite_weight: float = 1.0,
                 first_shell_weight: float = 1.0) -> torch.Tensor:
    w_edge = edge_weights(batch, first_shell_weight)
    total = 0.0
    for key, pred, target, mask, _ in _masked_pairs(out, batch, basis):
        w = onsite_weight if key == "node" else w_edge
        total = total + (w * elementwise((pred - target) * mask)).sum()
    return total / _weighted_count(batch, basis, onsite_weight, w_edge).to(total.dtype)


def mse_loss(out: dict, batch, basis: BasisTable, onsite_weight: float = 1.0,
             first_shell_weight: float = 1.0) -> torch.Tensor:
    """Mean squared error over the real orbital entries of all on-site and hopping blocks of the batch, each
    on-site entry counted ``onsite_weight`` times and each nearest-neighbour hopping entry ``first_shell_weight``
    times (at a 9 Å cutoff an atom has ~100-200 edges: on-site and first-shell blocks are a few % of the
    entries, and the bands are the most sensitive to them)."""
    return _masked_mean(out, batch, basis, torch.square, onsite_weight, first_shell_weight)


def mae_loss(out: dict, batch, basis: BasisTable, onsite_weight: float = 1.0,
             first_shell_weight: float = 1.0) -> torch.Tensor:
    """Mean absolute error over the real orbital entries, weighted as ``mse_loss``."""
    return _masked_mean(out, batch, basis, torch.abs, onsite_weight, first_shell_weight)


def optimal_gauge_shift(out: dict, batch, basis: BasisTable) -> torch.Tensor:
    """Per structure (B,), the c minimising Σ |H_pred - (H_target + c·S)|² over masked entries:
    c = <r, S> / <S, S> with r = H_pred - H_target (needs ``s_node``/``s_edge`` in the batch)."""
    return structure_mu(out["h_node"] - batch.h_node, out["h_edge"] - batch.h_edge, batch, basis)


def gauge_invariant_loss(out: dict, batch, basis: BasisTable, onsite_weight: float = 1.0,
                         first_shell_weight: float = 1.0) -> torch.Tensor:
    """MSE after removing the optimal per-structure shift H_target -> H_target + c·S (mean over the
    batch's masked entries, weighted like ``mse_loss``). Invariant to H_target -> H_target + c_b·S per structure b."""
    r_node, r_edge, _ = gauge_free_residuals(out, batch, basis)
    z, ei = batch.atomic_numbers, batch.edge_index
    w_edge = edge_weights(batch, first_shell_weight)
    total = 0.0
    for r, mask, w in ((r_node, block_mask(basis, z), onsite_weight), (r_edge, block_mask(basis, z, ei), w_edge)):
        total = total + (w * (r * mask.to(r.dtype)).square()).sum()
    return total / _weighted_count(batch, basis, onsite_weight, w_edge).to(total.dtype)
