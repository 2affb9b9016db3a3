"""Checkpoints are self-describing: load_model rebuilds the network and predicts what training saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from data_prep.lmdb_dataset import LmdbDataset
from data_prep.records import SCHEMA_VERSION
from data_prep.torch_data import block_mask, record_to_data, structure_to_data
from deeph_lightning import CheckpointError, load_model
from deeph_lightning.models.gauge import project_standardised, standardise_targets
from deeph_lightning.training import run
from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def trained_run(train_lmdb, tmp_path_factory):
    """A few epochs (one step each, several EMA updates), then the trainer's own test with best.ckpt."""
    out = tmp_path_factory.mktemp("ckpt_run")
    cfg = compose(train_overrides(train_lmdb, 10**9, trainer__max_steps=4, trainer__max_epochs=1000,
                                  model__optimizer__lr=0.01, model__scheduler__warmup_steps=1), out)
    return run(cfg)


@pytest.fixture(scope="module")
def trained(trained_run):
    return Path(trained_run["output_dir"]) / "checkpoints" / "last.ckpt"


def independent_mae_meV(loaded, dataset: LmdbDataset, indices) -> float:
    """Mean |H_pred - H_DFT| over the real orbitals of every block, one structure at a time."""
    dtype = next(loaded.model.parameters()).dtype
    err_sum, count = 0.0, 0.0
    for i in indices:
        data = Batch.from_data_list([record_to_data(dataset[i], loaded.basis)])
        for key in ("pos", "cell", "cell_shift"):
            data[key] = data[key].to(dtype)
        with torch.no_grad():
            out = loaded.model(data)
        if loaded.target_gauge == "standardised":  # the quickstart recipe: both sides in the <H,S> = 0 gauge
            standardise_targets(data, loaded.basis)
            out = project_standardised(out, data, loaded.basis)
        z, ei = data.atomic_numbers, data.edge_index
        for pred, ref, mask in ((out["h_node"], data.h_node, block_mask(loaded.basis, z)),
                                (out["h_edge"], data.h_edge, block_mask(loaded.basis, z, ei))):
            err_sum += float(((pred.double() - ref.double()).abs() * mask).sum())
            count += float(mask.sum())
    return err_sum / count * 1000.0


def test_trainer_test_metric_evaluates_best_checkpoint(trained_run, train_lmdb):
    """test/mae_meV printed by the trainer is the error of what best.ckpt holds (its EMA weights)."""
    ds = LmdbDataset(train_lmdb)
    loaded = load_model(trained_run["best_checkpoint"])
    assert loaded.target_gauge == "standardised"  # the quickstart recipe, so the projection is checked too
    expected = independent_mae_meV(loaded, ds, ds.metadata["splits"]["test"])
    assert trained_run["test"]["test/mae_meV"] == pytest.approx(expected, rel=1e-4)


def test_load_model_predicts_like_the_trained_module(trained, train_lmdb):
    ds = LmdbDataset(train_lmdb)
    loaded = load_model(trained)
    assert loaded.basis == ds.basis and loaded.cutoff == ds.cutoff
    meta = loaded.meta
    assert meta["schema_version"] == SCHEMA_VERSION and meta["has_ema"]
    assert meta["config"]["model"]["net"]["channels"] == 8 and meta["orbital_order"] == "openmx"
    # the output scale/shift tables of the training split are part of the net's config (model.block_stats=auto)
    stats = meta["net"]["block_stats"]
    assert sorted(map(int, stats["onsite_shift"])) == sorted(ds.basis.elements)
    # the DFT recipe travels with the model: S(R) of new structures needs no dataset
    assert ds.metadata["dft_recipe"]["basis"] and loaded.dft_recipe == ds.metadata["dft_recipe"]
    from deeph_eval.model_io import dft_recipe

    assert dft_recipe(loaded) == ds.metadata["dft_recipe"]

    # the EMA weights, read straight from the Lightning state dict
    raw = torch.load(trained, map_location="cpu", weights_only=True)
    state = raw["state_dict"]
    # each fact once: the network, basis and cutoff live in checkpoint["deeph"] only
    assert not {"net", "basis", "cutoff", "block_stats"} & set(raw["hyper_parameters"])
    ema = {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, ema[k]), k

    rec = ds[ds.metadata["splits"]["test"][0]]
    from_record = Batch.from_data_list([record_to_data(rec, loaded.basis)])
    # inference path: a bare structure and the checkpoint's cutoff give the same graph and prediction
    bare = Batch.from_data_list([structure_to_data(rec["atomic_numbers"], rec["positions"], rec["cell"], rec["pbc"],
                                                   loaded.cutoff, loaded.basis)])
    with torch.no_grad():
        a, b = loaded.model(from_record), loaded.model(bare)
    torch.testing.assert_close(a["h_edge"], b["h_edge"])
    torch.testing.assert_close(a["h_node"], b["h_node"])
    err = (a["h_edge"] - from_record.h_edge).abs().mean()
    assert np.isfinite(float(err))


def test_foreign_files_are_refused(tmp_path, trained):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a deeph-lightning checkpoint"):
        load_model(text)
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="no 'deeph' metadata"):
        load_model(plain)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.ckpt")
