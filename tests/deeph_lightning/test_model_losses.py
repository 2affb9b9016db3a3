"""Block losses, in particular invariance of the gauge loss to H -> H + c·S per structure."""

import pytest
import torch
from torch_geometric.data import Batch

from deeph_lightning.models import build_model, losses

from model_structures import BASIS, CUTOFF, STRUCTURES, TINY, graph


def block_set(seed, batch):
    """Hermitian, masked block sets of a real batch (random DeepH-2 networks stand in for H and S)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return build_model("deeph2", BASIS.to_dict(), CUTOFF, **TINY).double()(batch)


@pytest.fixture(scope="module")
def batch():
    b = Batch.from_data_list([graph(*s) for s in STRUCTURES])
    target, overlap = block_set(1, b), block_set(2, b)
    b.h_node, b.h_edge = target["h_node"], target["h_edge"]
    b.s_node, b.s_edge = overlap["h_node"], overlap["h_edge"]
    return b


def test_gauge_loss_invariant_to_per_structure_shift(batch):
    pred = block_set(3, batch)
    base = losses.gauge_invariant_loss(pred, batch, BASIS)
    shift = torch.tensor([0.3, -1.7, 2.5], dtype=torch.float64)  # eV, one per structure
    shifted = batch.clone()
    shifted.h_node = batch.h_node + shift[batch.batch][:, None, None] * batch.s_node
    shifted.h_edge = batch.h_edge + shift[batch.batch[batch.edge_index[0]]][:, None, None] * batch.s_edge
    torch.testing.assert_close(losses.gauge_invariant_loss(pred, shifted, BASIS), base, rtol=1e-10, atol=1e-12)
    # the plain MSE is not invariant, and the gauge loss never exceeds it
    assert losses.mse_loss(pred, shifted, BASIS) > 1.5 * losses.mse_loss(pred, batch, BASIS)
    assert base <= losses.mse_loss(pred, batch, BASIS)
    # a prediction that differs from the target only by c·S has zero gauge loss, and the shift is recovered
    exact = {"h_node": batch.h_node + 0.8 * batch.s_node, "h_edge": batch.h_edge + 0.8 * batch.s_edge}
    assert losses.gauge_invariant_loss(exact, batch, BASIS) < 1e-20
    torch.testing.assert_close(losses.optimal_gauge_shift(exact, batch, BASIS), torch.full((3,), 0.8, dtype=torch.float64))


def test_mse_and_mae_use_only_real_orbitals(batch):
    pred = block_set(3, batch)
    noisy = {k: v + 100.0 * (v == 0) for k, v in pred.items()}  # garbage outside the orbitals (and exact zeros)
    mask_n = losses.block_mask(BASIS, batch.atomic_numbers)
    mask_e = losses.block_mask(BASIS, batch.atomic_numbers, batch.edge_index)
    diff = torch.cat([(pred["h_node"] - batch.h_node)[mask_n], (pred["h_edge"] - batch.h_edge)[mask_e]])
    torch.testing.assert_close(losses.mse_loss(noisy, batch, BASIS), diff.square().mean())
    torch.testing.assert_close(losses.mae_loss(noisy, batch, BASIS), diff.abs().mean())


def test_onsite_weight_counts_each_onsite_entry_w_times(batch):
    """model.onsite_weight: the weighted mean over entries, on-site entries repeated w times (the count the
    module's DDP normalisation uses is the same weighted count)."""
    pred = block_set(3, batch)
    mask_n = losses.block_mask(BASIS, batch.atomic_numbers)
    mask_e = losses.block_mask(BASIS, batch.atomic_numbers, batch.edge_index)
    on, hop = (pred["h_node"] - batch.h_node)[mask_n], (pred["h_edge"] - batch.h_edge)[mask_e]
    w = 4
    repeated = torch.cat([on.repeat(w), hop])
    torch.testing.assert_close(losses.mae_loss(pred, batch, BASIS, onsite_weight=w), repeated.abs().mean())
    torch.testing.assert_close(losses.mse_loss(pred, batch, BASIS, onsite_weight=w), repeated.square().mean())
    assert float(losses.entry_count(batch, BASIS, w)) == len(repeated)
    assert losses.gauge_invariant_loss(pred, batch, BASIS, onsite_weight=w) != losses.gauge_invariant_loss(pred, batch, BASIS)
    torch.testing.assert_close(losses.mae_loss(pred, batch, BASIS, onsite_weight=1.0), losses.mae_loss(pred, batch, BASIS))


def test_first_shell_weight_counts_each_nearest_neighbour_entry_w_times(batch):
    """model.first_shell_weight: hopping entries of each structure's bonds up to 1.1x its own shortest bond
    (measured here independently, structure by structure) are repeated w times in the mean."""
    pred = block_set(3, batch)
    i, j = batch.edge_index
    vec = batch.pos[j] - batch.pos[i] + torch.einsum("ek,ekc->ec", batch.cell_shift, batch.cell[batch.batch[i]])
    length, owner = vec.norm(dim=1), batch.batch[i]
    near = torch.zeros_like(length, dtype=torch.bool)
    for g in range(batch.num_graphs):
        mine = owner == g
        near |= mine & (length <= 1.1 * length[mine].min())
    assert 0 < int(near.sum()) < len(near) and len(set(owner[near].tolist())) == batch.num_graphs
    mask_n = losses.block_mask(BASIS, batch.atomic_numbers)
    mask_e = losses.block_mask(BASIS, batch.atomic_numbers, batch.edge_index)
    diff_e = pred["h_edge"] - batch.h_edge
    on = (pred["h_node"] - batch.h_node)[mask_n]
    w = 5
    repeated = torch.cat([on, diff_e[mask_e & ~near[:, None, None]]] + [diff_e[mask_e & near[:, None, None]]] * w)
    torch.testing.assert_close(losses.mae_loss(pred, batch, BASIS, first_shell_weight=w), repeated.abs().mean())
    torch.testing.assert_close(losses.mse_loss(pred, batch, BASIS, first_shell_weight=w), repeated.square().mean())
    assert float(losses.entry_count(batch, BASIS, first_shell_weight=w)) == len(repeated)
    exact = {"h_node": batch.h_node + 0.8 * batch.s_node, "h_edge": batch.h_edge + 0.8 * batch.s_edge}
    assert losses.gauge_invariant_loss(exact, batch, BASIS, first_shell_weight=w) < 1e-20
