"""A run that stopped at max_steps and is resumed (ckpt_path=auto, larger max_steps) continues exactly like an
uninterrupted run: same batches (the sampler shuffles by epoch), same losses, same logged epoch/step, whether
it stopped at the end of an epoch or inside one. Its last.ckpt is the one Lightning writes at the end of
training, which Lightning alone resumes one epoch too far (Lightning issue #19617)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from deeph_lightning.training import run

from lightning_helpers import budget_for, compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


class StepRecorder(pl.Callback):
    """global step -> (train loss, epoch, batch index in the epoch)."""

    def __init__(self):
        self.steps: dict[int, tuple[float, int, int]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps[trainer.global_step] = (float(pl_module.last_train_loss), trainer.current_epoch, batch_idx)


def fit(dataset: Path, out: Path, budget: int, max_steps: int, **kw) -> dict[int, tuple[float, int, int]]:
    rec = StepRecorder()
    run(compose(train_overrides(dataset, budget, trainer__max_steps=max_steps, trainer__max_epochs=1000,
                                trainer__log_every_n_steps=1, test_after_training=False, **kw), out),
        extra_callbacks=[rec])
    return rec.steps


def logged_counters(out: Path) -> list[tuple[str, str]]:
    """The (epoch, step) columns of the train/loss rows of the run's csv/metrics.csv."""
    with open(out / "csv" / "metrics.csv") as f:
        return [(r["epoch"], r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_run_stopped_at_max_steps_resumes_exactly(train_lmdb, tmp_path):
    budget = budget_for(train_lmdb, 8)
    sampler = instantiate(compose(train_overrides(train_lmdb, budget)).data).train_sampler()
    epoch_end, second_epoch = (len(sampler.global_batches(epoch)) for epoch in (0, 1))
    assert epoch_end >= 3 and second_epoch >= 3, "need several steps per epoch"
    total = epoch_end + 4  # one epoch, then a few steps of the next

    reference = fit(train_lmdb, tmp_path / "uninterrupted", budget, total)
    out = tmp_path / "stopped"
    first = fit(train_lmdb, out, budget, epoch_end)  # stops exactly at the end of epoch 0
    after_epoch_end = fit(train_lmdb, out, budget, epoch_end + 2, ckpt_path="auto")  # stops inside epoch 1
    after_mid_epoch = fit(train_lmdb, out, budget, total, ckpt_path="auto")
    assert sorted(first) == list(range(1, epoch_end + 1))
    assert sorted(after_epoch_end) == [epoch_end + 1, epoch_end + 2]
    assert sorted(after_mid_epoch) == [epoch_end + 3, epoch_end + 4]
    resumed = {**first, **after_epoch_end, **after_mid_epoch}
    for step in range(1, total + 1):
        loss, epoch, batch_idx = resumed[step]
        assert (epoch, batch_idx) == reference[step][1:], (step, resumed[step], reference[step])
        assert loss == pytest.approx(reference[step][0], rel=1e-6, abs=1e-9), (step, resumed[step], reference[step])
    assert logged_counters(out) == logged_counters(tmp_path / "uninterrupted")
