"""Standardised targets (model.target_gauge) on real shipped DFT data: H and H + c·S are the same target, the
same loss and the same gauge-invariant metric; the checkpoint records the gauge it was trained in."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from data_prep.basis import BasisTable
from data_prep.deeph_format import read_deeph
from data_prep.embedded import quickstart_path
from data_prep.records import structure_to_record
from data_prep.torch_data import record_to_data
from deeph_lightning.metrics import BlockErrorAccumulator
from deeph_lightning.models import losses
from deeph_lightning.models.checkpoint import load_model
from data_prep.dft.atom_reference import onsite_table
from data_prep.gauge import atom_blocks, huckel_blocks, in_gauge
from deeph_eval.truncation import graph_keys
from deeph_lightning.models.checkpoint import CheckpointError
from deeph_lightning.models.gauge import (gauge_free_residuals, gauge_mu_of, project_standardised, standardise_targets,
                                          structure_mu)
from deeph_lightning.module import HamiltonianModule

from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)
from model_structures import TINY

FOLDERS = ("CSi_zincblende_s11_00006", "Si4_diamond_s11_00001")
CUTOFF = 4.0


@pytest.fixture(scope="module")
def shipped():
    """(basis, records) of two shipped DFT structures (C/Si, Si), blocks within 4 Å."""
    structures = [read_deeph(quickstart_path() / name) for name in FOLDERS]
    basis = BasisTable.from_mapping({int(z): list(ls) for st in structures for z, ls in zip(st.numbers, st.orbital_types)})
    return basis, [structure_to_record(st, CUTOFF, name) for st, name in zip(structures, FOLDERS)]


def batch_of(basis, records, shifts=(0.0, 0.0)):
    """A batch of the records with H -> H + c_b·S for structure b."""
    graphs = []
    for rec, c in zip(records, shifts):
        rec = {**rec, "h_node": rec["h_node"] + c * rec["s_node"], "h_edge": rec["h_edge"] + c * rec["s_edge"]}
        graphs.append(record_to_data(rec, basis, dtype=torch.float64))
    return Batch.from_data_list(graphs)


def atom_table(basis):
    """The isolated-atom table of the shipped data's recipe, as the training code passes it (``atom_onsite``)."""
    recipe = read_deeph(quickstart_path() / FOLDERS[0]).info["dft"]
    return {str(z): b.tolist() for z, b in onsite_table(recipe, basis.elements).items()}


def module(basis, gauge="standardised"):
    torch.manual_seed(0)
    net = {"_target_": "deeph_lightning.models.deeph2.DeepH2", **TINY}
    extra = {"atom_onsite": atom_table(basis)} if gauge in ("atoms", "huckel") else {}
    return HamiltonianModule(net, basis, CUTOFF, ema_decay=None, target_gauge=gauge, **extra).double()


def test_h_and_h_plus_cs_give_the_same_standardised_target_and_loss(shipped):
    basis, records = shipped
    raw, moved = batch_of(basis, records), batch_of(basis, records, shifts=(0.7, -2.3))
    mu_raw, mu_moved = standardise_targets(raw, basis), standardise_targets(moved, basis)
    torch.testing.assert_close(mu_moved - mu_raw, torch.tensor([0.7, -2.3], dtype=torch.float64))
    torch.testing.assert_close(moved.h_node, raw.h_node, rtol=0, atol=1e-12)
    torch.testing.assert_close(moved.h_edge, raw.h_edge, rtol=0, atol=1e-12)
    # <H, S> = 0 per structure afterwards
    torch.testing.assert_close(structure_mu(raw.h_node, raw.h_edge, raw, basis), torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # the module's own target preparation and loss: identical for H and H + c·S
    m = module(basis)
    batches = [m._cast(batch_of(basis, records)), m._cast(batch_of(basis, records, shifts=(0.7, -2.3)))]
    with torch.no_grad():
        out = m.net(batches[0])
    mse = [losses.mse_loss(out, b, basis) for b in batches]
    torch.testing.assert_close(mse[0], mse[1], rtol=1e-12, atol=0)


def test_standardised_predictions_are_projected_onto_the_targets_gauge(shipped):
    """A standardised module's prediction has <H,S> = 0 per structure; its error is the gauge-invariant residual
    of the network's output (never larger), and a rigid c·S added to the output changes nothing."""
    basis, records = shipped
    m = module(basis)
    b = m._cast(batch_of(basis, records))
    with torch.no_grad():
        raw_out = m.net(b)
        out = m._predict(m.net, b)
    torch.testing.assert_close(structure_mu(out["h_node"], out["h_edge"], b, basis), torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    r_node, r_edge, _ = gauge_free_residuals(raw_out, b, basis)
    torch.testing.assert_close(out["h_node"] - b.h_node, r_node, rtol=0, atol=1e-12)
    torch.testing.assert_close(out["h_edge"] - b.h_edge, r_edge, rtol=0, atol=1e-12)
    assert losses.mse_loss(out, b, basis) < losses.mse_loss(raw_out, b, basis)
    on = b.batch
    moved = {"h_node": raw_out["h_node"] + torch.tensor([0.3, -1.1], dtype=torch.float64)[on][:, None, None] * b.s_node,
             "h_edge": raw_out["h_edge"] + torch.tensor([0.3, -1.1], dtype=torch.float64)[on[b.edge_index[0]]][:, None, None]
             * b.s_edge}
    again = project_standardised(moved, b, basis)
    torch.testing.assert_close(again["h_edge"], out["h_edge"], rtol=0, atol=1e-12)
    with torch.no_grad():  # raw targets: the network's output as it is
        torch.testing.assert_close(module(basis, gauge="raw")._predict(m.net, b)["h_node"], raw_out["h_node"],
                                   rtol=0, atol=1e-14)


def test_gauge_invariant_metrics_ignore_a_rigid_shift(shipped):
    basis, records = shipped
    m = module(basis, gauge="raw")
    summaries = []
    for shifts in ((0.0, 0.0), (1.5, -0.4)):
        b = m._cast(batch_of(basis, records, shifts))
        with torch.no_grad():
            out = m.net(b)
        acc = BlockErrorAccumulator(basis)
        acc.update(b, out)
        summaries.append(acc.summary(per_pair=False))
    for key in ("mae_gauge_meV", "mae_gauge_onsite_meV", "mae_gauge_hopping_meV"):
        assert summaries[0][key] == pytest.approx(summaries[1][key], rel=1e-9)
    assert summaries[0]["mae_onsite_meV"] != pytest.approx(summaries[1]["mae_onsite_meV"], rel=1e-3)


def test_checkpoint_round_trips_the_gauge(shipped, tmp_path):
    basis, _ = shipped
    for gauge in ("raw", "standardised", "atoms", "huckel"):
        m = module(basis, gauge)
        ckpt = {"state_dict": m.state_dict()}
        m.on_save_checkpoint(ckpt)
        torch.save(ckpt, tmp_path / f"{gauge}.ckpt")
        assert load_model(tmp_path / f"{gauge}.ckpt").target_gauge == gauge
    # the atoms gauge carries its isolated atoms: evaluation needs no dataset to find the zero
    blocks = load_model(tmp_path / "atoms.ckpt").reference_blocks([14, 6])
    assert blocks[(0, 0, 0, 1, 1)].tolist() == atom_table(basis)["6"]
    assert load_model(tmp_path / "raw.ckpt").reference_blocks([14, 6]) is None
    assert load_model(tmp_path / "huckel.ckpt").meta["huckel_k"] == 1.75
    # the validation band plot reads a live module as evaluation reads its checkpoint
    from deeph_lightning.callbacks.band_plot import ValidationBandsPlot

    for gauge in ("standardised", "huckel"):
        live, saved = ValidationBandsPlot(str(tmp_path))._loaded(module(basis, gauge)), load_model(tmp_path / f"{gauge}.ckpt")
        assert live.target_gauge == saved.target_gauge == gauge
        st = read_deeph(quickstart_path() / FOLDERS[0])
        a, b = live.reference_blocks(st.numbers, st.overlaps), saved.reference_blocks(st.numbers, st.overlaps)
        if gauge == "standardised":
            assert a is None and b is None
        else:
            assert a.keys() == b.keys() == st.overlaps.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ckpt = torch.load(tmp_path / "huckel.ckpt", weights_only=True)
    ckpt["deeph"]["huckel_k"] = None
    torch.save(ckpt, tmp_path / "huckel_without_k.ckpt")
    with pytest.raises(CheckpointError, match="without its extended-Hückel K"):
        load_model(tmp_path / "huckel_without_k.ckpt")
    ckpt = torch.load(tmp_path / "atoms.ckpt", weights_only=True)
    ckpt["deeph"]["atom_onsite"] = None
    torch.save(ckpt, tmp_path / "atoms_without_table.ckpt")
    with pytest.raises(CheckpointError, match="without its isolated-atom table"):
        load_model(tmp_path / "atoms_without_table.ckpt")
    with pytest.raises(ValueError, match="supplies the isolated-atom table"):
        HamiltonianModule({"_target_": "deeph_lightning.models.deeph2.DeepH2", **TINY}, basis, CUTOFF, target_gauge="atoms")
    # training in one gauge from a checkpoint of the other: a clear warning
    with pytest.warns(UserWarning, match="trained on raw targets and this run trains on standardised"):
        module(basis, "standardised").on_load_checkpoint(torch.load(tmp_path / "raw.ckpt", weights_only=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(basis, "raw").on_load_checkpoint(torch.load(tmp_path / "raw.ckpt", weights_only=True))
    with pytest.raises(ValueError, match="target_gauge must be one of raw, standardised, atoms"):
        module(basis, "zero")


def test_atoms_gauge_targets_are_aligned_to_the_isolated_atoms(shipped):
    """Atoms gauge: H and H + c·S are the same target; the target minus the free atoms' on-site blocks is
    standardised (μ_a = 0), equal to the numpy definition on the folder's blocks within the cutoff; predictions
    are projected onto the same zero, with the same error as the standardised projection."""
    basis, records = shipped
    m = module(basis, "atoms")
    raw, moved = m._cast(batch_of(basis, records)), m._cast(batch_of(basis, records, shifts=(0.7, -2.3)))
    torch.testing.assert_close(moved.h_node, raw.h_node, rtol=0, atol=1e-12)
    torch.testing.assert_close(moved.h_edge, raw.h_edge, rtol=0, atol=1e-12)
    atom_node = m.atom_reference[raw.atomic_numbers]
    torch.testing.assert_close(gauge_mu_of(raw.h_node, raw.h_edge, raw, basis, atom_node), torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # independent path: data_prep.gauge on the folder's own blocks, each atom's on-site block in its orbitals
    st = read_deeph(quickstart_path() / FOLDERS[0])
    table = {int(z): v for z, v in atom_table(basis).items()}
    h, mu = in_gauge("atoms", st.hamiltonians, st.overlaps, graph_keys(st, CUTOFF),
                     reference=atom_blocks(st.numbers, table))
    for a, z in enumerate(st.numbers):
        slots = torch.from_numpy(basis.union_slots(int(z)))
        torch.testing.assert_close(raw.h_node[a][slots[:, None], slots[None, :]],
                                   torch.from_numpy(h[(0, 0, 0, a, a)]), rtol=0, atol=1e-5)  # float32 storage
    # predictions: projected onto the atoms' zero; a rigid c·S on the output changes nothing
    with torch.no_grad():
        raw_out, out = m.net(raw), m._predict(m.net, raw)
    torch.testing.assert_close(gauge_mu_of(out["h_node"], out["h_edge"], raw, basis, atom_node),
                               torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    on = raw.batch
    c = torch.tensor([0.3, -1.1], dtype=torch.float64)
    shifted_out = {"h_node": raw_out["h_node"] + c[on][:, None, None] * raw.s_node,
                   "h_edge": raw_out["h_edge"] + c[on[raw.edge_index[0]]][:, None, None] * raw.s_edge}
    again = project_standardised(shifted_out, raw, basis, atom_node)
    torch.testing.assert_close(again["h_edge"], out["h_edge"], rtol=0, atol=1e-12)
    # the error after projection is the gauge-invariant residual, exactly as for standardised targets
    r_node, r_edge, _ = gauge_free_residuals(raw_out, raw, basis)
    torch.testing.assert_close(out["h_node"] - raw.h_node, r_node, rtol=0, atol=1e-12)
    torch.testing.assert_close(out["h_edge"] - raw.h_edge, r_edge, rtol=0, atol=1e-12)
    assert mu != 0.0


def test_huckel_targets_are_the_residual_of_the_extended_huckel_reference(shipped):
    """Huckel gauge: the module's targets are H - H0 - μ_h·S (H0: free atoms on-site, K/2 (A_i S_ij + S_ij A_j)
    on the edges), the same for H and H + c·S, equal to the numpy definition on the folder's own blocks; the
    exact residual, given back to evaluation (``as_trained``), is the DFT H with its μ_h removed, so its bands
    are DFT's shifted rigidly by -μ_h."""
    from data_prep.kspace import band_energies
    from deeph_eval.gauge import as_trained

    basis, records = shipped
    m = module(basis, "huckel")
    raw, moved = m._cast(batch_of(basis, records)), m._cast(batch_of(basis, records, shifts=(0.7, -2.3)))
    torch.testing.assert_close(moved.h_node, raw.h_node, rtol=0, atol=1e-12)
    torch.testing.assert_close(moved.h_edge, raw.h_edge, rtol=0, atol=1e-12)
    torch.testing.assert_close(structure_mu(raw.h_node, raw.h_edge, raw, basis), torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    st = read_deeph(quickstart_path() / FOLDERS[0])
    table = {int(z): v for z, v in atom_table(basis).items()}
    keys = graph_keys(st, CUTOFF)
    h0 = huckel_blocks(st.numbers, table, st.overlaps, keys)
    full, mu = in_gauge("huckel", st.hamiltonians, st.overlaps, keys, reference=h0)
    residual = {k: full[k] - h0[k] for k in keys}
    slots = [torch.from_numpy(basis.union_slots(int(z))) for z in st.numbers]
    first = raw.batch[raw.edge_index[0]] == 0
    edges = {(*raw.cell_shift[e].tolist(), *raw.edge_index[:, e].tolist()): e for e in first.nonzero().flatten().tolist()}
    assert set(edges) | {(0, 0, 0, a, a) for a in range(len(st.numbers))} == set(keys)
    for key in keys:
        i, j = key[3], key[4]
        block = raw.h_node[i] if key == (0, 0, 0, i, j) and i == j else raw.h_edge[edges[key]]
        torch.testing.assert_close(block[slots[i][:, None], slots[j][None, :]], torch.from_numpy(residual[key]),
                                   rtol=0, atol=1e-5)  # float32 storage
    hoppings = [k for k in keys if k not in {(0, 0, 0, a, a) for a in range(len(st.numbers))}]
    assert np.mean([np.abs(residual[k]).mean() for k in hoppings]) < np.mean(
        [np.abs(st.hamiltonians[k] - mu * st.overlaps[k]).mean() for k in hoppings])  # H0 carries part of each hopping

    back = as_trained("huckel", residual, st.overlaps, h0)
    kpts = np.random.default_rng(0).random((3, 3))
    s_keys = {k: st.overlaps[k] for k in keys}  # H + cS is a rigid shift for S on the same blocks as H
    e_dft = band_energies({k: st.hamiltonians[k] for k in keys}, s_keys, st.n_orbitals(), kpts)
    e_back = band_energies(back, s_keys, st.n_orbitals(), kpts)
    np.testing.assert_allclose(e_back, e_dft - mu, rtol=0, atol=1e-9)
    assert abs(mu) > 0.1


@pytest.mark.slow
def test_a_huckel_run_trains_plots_and_checkpoints_its_reference(train_lmdb, tmp_path):
    """train.py's run() in the huckel gauge on real data: the isolated atoms come from the dataset's recipe,
    the output tables from the residual targets, the validation band plot adds H0 back, and the checkpoint
    carries what evaluation needs to write its H."""
    from data_prep.gauge import gauge_mu
    from deeph_eval.gauge import model_hamiltonian
    from deeph_eval.predict import predict_blocks
    from deeph_lightning.training import run

    run_dir = tmp_path / "run"
    overrides = train_overrides(train_lmdb, 10**9, trainer__max_steps=2, trainer__max_epochs=1000,  # a step an epoch
                                model__target_gauge="huckel",
                                model__block_stats="auto", callbacks__val_bands__every_n_steps=1,
                                test_after_training=False)
    run(compose(overrides, run_dir))
    loaded = load_model(run_dir / "checkpoints" / "last.ckpt")
    assert loaded.target_gauge == "huckel" and loaded.meta["huckel_k"] == 1.75
    assert sorted(int(z) for z in loaded.meta["atom_onsite"]) == [6, 14]
    assert list((run_dir / "bands").glob("val_bands_step*.png"))
    st = read_deeph(quickstart_path() / FOLDERS[0])
    h = model_hamiltonian(loaded, st.numbers, predict_blocks(loaded, st), st.overlaps)
    assert gauge_mu(h, st.overlaps) == pytest.approx(0.0, abs=1e-9)  # written standardised (written_gauge)
