"""Checkpoints are self-describing: load_model rebuilds the network and predicts what training saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from data_prep.lmdb_dataset import LmdbDataset
from data_prep.records import SCHEMA_VERSION
from data_prep.torch_data import record_to_data, structure_to_data
from deeph_lightning import CheckpointError, load_model
from deeph_lightning.training import run
from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def trained(train_lmdb, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt_run")
    cfg = compose(train_overrides(train_lmdb, 10**9, trainer__max_steps=3, trainer__max_epochs=1000,
                                  test_after_training=False), out)
    run(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_load_model_predicts_like_the_trained_module(trained, train_lmdb):
    ds = LmdbDataset(train_lmdb)
    loaded = load_model(trained)
    assert loaded.basis == ds.basis and loaded.cutoff == ds.cutoff
    meta = loaded.meta
    assert meta["schema_version"] == SCHEMA_VERSION and meta["has_ema"]
    assert meta["config"]["model"]["net"]["channels"] == 8 and meta["orbital_order"] == "openmx"

    # the EMA weights, read straight from the Lightning state dict
    state = torch.load(trained, map_location="cpu", weights_only=True)["state_dict"]
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
