"""Every epoch of a real run trains on every training structure, also when the epoch's shuffled packing
gives more batches than epoch 0 (Lightning alone kept epoch 0's length and dropped the extra batches)."""

from __future__ import annotations

from collections import defaultdict

import pytorch_lightning as pl
from hydra.utils import instantiate

from deeph_lightning.training import run

from lightning_helpers import budget_for, compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


class SeenStructures(pl.Callback):
    def __init__(self):
        self.ids: dict[int, list[str]] = defaultdict(list)
        self.batches: dict[int, int] = defaultdict(int)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ids[trainer.current_epoch] += list(batch.structure_id)
        self.batches[trainer.current_epoch] += 1


def test_every_epoch_trains_every_structure(train_lmdb, tmp_path):
    epochs = 4
    overrides = train_overrides(train_lmdb, budget_for(train_lmdb, 3), trainer__max_epochs=epochs,
                                trainer__max_steps=-1, test_after_training=False)
    sampler = instantiate(compose(overrides).data).train_sampler()
    packed = [len(sampler.global_batches(e)) for e in range(epochs)]
    assert max(packed) > packed[0], f"need an epoch packed into more batches than epoch 0: {packed}"

    seen = SeenStructures()
    run(compose(overrides, tmp_path), extra_callbacks=[seen])
    assert [seen.batches[e] for e in range(epochs)] == packed
    every = sorted(seen.ids[0])
    assert len(every) == len(set(every)) == len(sampler.sizes)
    for e in range(epochs):
        assert sorted(seen.ids[e]) == every, e
