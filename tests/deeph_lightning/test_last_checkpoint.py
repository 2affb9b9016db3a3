"""last.ckpt holds the final step of a run even when the run ends between two every_n_train_steps saves
(Lightning's ModelCheckpoint alone left it at the last periodic save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deeph_lightning.training import run

from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


def budget_of(dataset: Path, structures_per_batch: int) -> int:
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(dataset)
    m = ds.metadata
    sizes = (np.asarray(m["n_atoms"]) + np.asarray(m["n_edges"])) * ds.basis.n_union**2
    return int(np.sort(sizes)[len(sizes) // 2] * structures_per_batch)


def test_last_checkpoint_holds_final_step(train_lmdb, tmp_path):
    cfg = compose(train_overrides(train_lmdb, budget_of(train_lmdb, 2), trainer__max_steps=6, trainer__max_epochs=1000,
                                  callbacks__last_checkpoint__every_n_train_steps=4, test_after_training=False),
                  tmp_path)
    result = run(cfg)
    ckpt = torch.load(Path(result["last_checkpoint"]), weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 6
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]
