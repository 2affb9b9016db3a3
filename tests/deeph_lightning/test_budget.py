"""The warm-up + cosine LR schedule follows the training budget (deeph_lightning/budget.py): it reaches its
minimum exactly where training ends, for a step, an epoch and a wall-time budget; a limit that would cut the
budget short is refused before training; a resumed run continues the schedule (a raised budget re-sizes it)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from deeph_lightning.budget import BudgetError, training_budget, wall_clock
from deeph_lightning.module import cosine, warmup_cosine
from deeph_lightning.preflight import SetupError
from deeph_lightning.training import build, run

from lightning_helpers import budget_for, compose, train_lmdb, train_overrides  # noqa: F401 (fixture)

WARMUP = 2


class LRRecorder(pl.Callback):
    """global step -> the LR that step trained with; the LR after the last step; the run's last step."""

    def __init__(self, crash=None):
        self.used: dict[int, float] = {}
        self.final: float | None = None
        self.end_step: int | None = None
        self.crash = crash

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.used[trainer.global_step + 1] = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.crash is not None and self.crash(trainer):
            raise RuntimeError("simulated crash")

    def on_train_end(self, trainer, pl_module):
        self.final = trainer.optimizers[0].param_groups[0]["lr"]
        self.end_step = trainer.global_step


def overrides(dataset, **kw) -> list[str]:
    """The shipped quickstart experiment on the test dataset, ~4 steps per epoch, a short warm-up, no validation."""
    kw = {"model__scheduler__warmup_steps": WARMUP, "test_after_training": False,
          "trainer__check_val_every_n_epoch": 1000, "callbacks__val_bands": "null", **kw}
    return train_overrides(dataset, budget_for(dataset, 8), **kw)


def fit(dataset, out, recorder=None, **kw) -> LRRecorder:
    recorder = recorder or LRRecorder()
    run(compose(overrides(dataset, **kw), out), extra_callbacks=[recorder])
    return recorder


def budget_of(dataset, out, **kw):
    """The budget of the Trainer train.py would build (not fitted)."""
    cfg = compose(overrides(dataset, **kw), out)
    trainer = build("trainer", cfg.trainer, logger=False, enable_progress_bar=False)
    return training_budget(trainer, instantiate(cfg.data))


def quickstart_lr() -> tuple[float, float]:
    """The quickstart's peak LR and its minimum as a fraction of it."""
    model = compose(["+experiment=quickstart"]).model
    return float(model.optimizer.lr), float(model.scheduler.min_lr_ratio)


def test_limits_that_would_cut_the_budget_short(train_lmdb, tmp_path):
    assert compose(["+experiment=quickstart"]).trainer.max_epochs == -1  # the shipped quickstart: steps alone
    assert budget_of(train_lmdb, tmp_path, trainer__max_steps=2000).describe() == "2000 steps (trainer.max_steps)"
    # an epoch limit that ends training before the step budget is refused before anything trains
    with pytest.raises(SetupError, match=r"trainer.max_epochs=2 ends training at step \d+, before .*max_steps=2000"):
        run(compose(overrides(train_lmdb, trainer__max_steps=2000, trainer__max_epochs=2), tmp_path / "cut"))
    assert not (tmp_path / "cut" / "checkpoints").exists()
    # a step budget that ends training before the epoch limit is said
    assert "ends training in epoch" in budget_of(train_lmdb, tmp_path, trainer__max_epochs=500).warning
    # a time budget: the other limits must be off
    with pytest.raises(BudgetError, match=f"trainer.max_steps={compose(['+experiment=quickstart']).trainer.max_steps}"):
        budget_of(train_lmdb, tmp_path, trainer__max_time="00:00:10:00")
    timed = budget_of(train_lmdb, tmp_path, trainer__max_time="00:00:10:00", trainer__max_steps=-1)
    assert (timed.kind, timed.size) == ("time", 600.0)


def test_epoch_then_step_budget_end_the_schedule_with_training(train_lmdb, tmp_path):
    """An epoch budget ends with the last batch of its last epoch (epochs differ in batches); the run continued
    with a step budget beyond it (ckpt_path=auto) follows the re-sized schedule from its first step."""
    epochs = 2
    sampler = instantiate(compose(overrides(train_lmdb)).data).train_sampler()
    per_epoch = [len(sampler.global_batches(e)) for e in range(epochs)]
    ends = [(e + (i + 1) / n) / epochs for e, n in enumerate(per_epoch) for i in range(n)]  # progress after each step
    lr0, floor = quickstart_lr()
    by_epochs = fit(train_lmdb, tmp_path, trainer__max_steps=-1, trainer__max_epochs=epochs)
    assert by_epochs.end_step == len(ends)
    expected = [lr0 * cosine(ends[k - 2], floor) for k in range(WARMUP + 2, len(ends) + 1)]
    assert [by_epochs.used[k] for k in range(WARMUP + 2, len(ends) + 1)] == pytest.approx(expected)
    assert by_epochs.final == pytest.approx(lr0 * floor)

    steps = len(ends) + 3
    by_steps = fit(train_lmdb, tmp_path, trainer__max_steps=steps, trainer__max_epochs=-1, ckpt_path="auto")
    assert sorted(by_steps.used) == list(range(len(ends) + 1, steps + 1)) and by_steps.end_step == steps
    factor = warmup_cosine(WARMUP, steps, floor)
    resumed = sorted(by_steps.used)
    assert [by_steps.used[k] for k in resumed] == pytest.approx([lr0 * factor(k - 1) for k in resumed])
    assert by_steps.final == pytest.approx(lr0 * floor)


def progress_of(lr: float, lr0: float, floor: float) -> float:
    """The budget fraction a cosine LR stands for."""
    return math.acos(max(-1.0, min(1.0, 2 * (lr / lr0 - floor) / (1 - floor) - 1))) / math.pi


def test_time_budget_schedule_resumes_and_ends_at_the_minimum(train_lmdb, tmp_path):
    seconds = 12
    lr0, floor = quickstart_lr()
    common = dict(trainer__max_steps=-1, trainer__max_time=f"00:00:00:{seconds:02d}", model__scheduler__warmup_steps=0,
                  callbacks__last_checkpoint__every_n_train_steps=1)

    def crash(trainer):  # after a last.ckpt, past a third of the time
        return trainer.global_step >= 2 and wall_clock(trainer).time_elapsed("train") > seconds / 3

    killed = LRRecorder(crash=crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(train_lmdb, tmp_path, killed, **common)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    saved_elapsed = next(v for k, v in saved["callbacks"].items() if "Timer" in k)["time_elapsed"]["train"]
    resumed = fit(train_lmdb, tmp_path, ckpt_path="auto", **common)

    step = saved["global_step"]
    assert min(resumed.used) == step + 1
    # the clock goes on from the checkpoint: the first resumed step has the LR of the saved elapsed time
    assert progress_of(resumed.used[step + 1], lr0, floor) == pytest.approx(saved_elapsed / seconds, abs=0.01)
    assert resumed.used[step + 1] <= killed.used[step + 1] * (1 + 1e-9)
    lrs = [killed.used[k] for k in range(1, step + 1)] + [resumed.used[k] for k in sorted(resumed.used)]
    assert lrs[0] == pytest.approx(lr0) and all(b <= a * (1 + 1e-9) for a, b in zip(lrs, lrs[1:])), lrs
    assert resumed.final == pytest.approx(lr0 * floor)  # stopped by the budget, at its end
    final = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == resumed.end_step
    assert next(v for k, v in final["callbacks"].items() if "Timer" in k)["time_elapsed"]["train"] >= seconds
