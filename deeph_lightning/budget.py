"""The training budget: the one Trainer limit that ends training, and how much of it a run has spent.

The warm-up + cosine LR schedule (``module.HamiltonianModule``) follows it, so the cosine reaches its
minimum exactly where training ends:

* ``trainer.max_time`` (a wall-time budget, Lightning's ``Timer``): the cosine follows the elapsed fraction
  of the time; ``max_steps`` and ``max_epochs`` must then be -1 (either could end training part-way).
* ``trainer.max_steps`` > 0 (a step budget): the cosine ends at that step. A ``max_epochs`` that would end
  training earlier is an error; one that is not reached only caps.
* else ``trainer.max_epochs``: the cosine follows the epochs done (fractions of the current epoch
  counted in its batches, which vary with the packing), ending with the last batch of the last epoch.

The elapsed time is Lightning's ``Timer``, saved in checkpoints, and the step and epoch counters are the fit
loop's, so a resumed run (``ckpt_path=auto``) continues the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer


class BudgetError(ValueError):
    """Trainer limits that contradict each other (train.py: exit 2, one line)."""


@dataclass(frozen=True)
class Budget:
    kind: str  # steps | epochs | time
    size: float  # optimizer steps, epochs or seconds
    warning: str | None = None  # a second limit that is not reached

    @property
    def steps(self) -> int | None:
        return int(self.size) if self.kind == "steps" else None

    def describe(self) -> str:
        if self.kind == "time":
            return f"{timedelta(seconds=round(self.size))} of training (trainer.max_time)"
        return f"{int(self.size)} {self.kind} (trainer.max_{self.kind})"

    def progress(self, trainer: pl.Trainer) -> Callable[[], float]:
        """The fraction of the budget spent, read when called (``epochs`` and ``time``)."""
        if self.kind == "epochs":
            return lambda: epochs_done(trainer) / self.size
        if self.kind == "time":
            timer = wall_clock(trainer)
            # every rank takes rank 0's clock: different learning rates would split the DDP replicas
            return lambda: float(trainer.strategy.broadcast(timer.time_elapsed("train"))) / self.size
        raise ValueError(f"a {self.kind} budget has a fixed length: use Budget.steps")


def wall_clock(trainer: pl.Trainer) -> Timer | None:
    """Lightning's ``Timer`` of ``trainer.max_time`` (or one passed as a callback with a duration)."""
    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb._duration is not None:
            return cb
    return None


def epochs_done(trainer: pl.Trainer) -> float:
    """Epochs completed plus the fraction of the current epoch's batches processed."""
    n = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    part = done / n if isinstance(n, int) and n > 0 else 0.0
    return trainer.current_epoch + part


def steps_in_epochs(trainer: pl.Trainer, datamodule, epochs: int, stop_at: int) -> tuple[int, int] | None:
    """(optimizer steps, epochs) of the first ``epochs`` epochs, counting stopped at the epoch in which the
    steps reach ``stop_at``; None for a datamodule whose epochs are unknown before training."""
    if datamodule is None or not hasattr(datamodule, "train_sampler"):
        return None
    sampler = datamodule.train_sampler()
    limit, accumulate = trainer.limit_train_batches, max(1, int(trainer.accumulate_grad_batches))
    steps = 0
    for epoch in range(epochs):
        n = len(sampler.global_batches(epoch))
        n = min(n, limit) if isinstance(limit, int) else int(n * limit)
        steps += math.ceil(n / accumulate)  # the last batch of an epoch steps even with accumulation unfinished
        if steps >= stop_at:
            return steps, epoch + 1
    return steps, epochs


def training_budget(trainer: pl.Trainer, datamodule=None) -> Budget:
    """The budget of ``trainer``'s limits; ``BudgetError`` when another limit would cut it short."""
    timer = wall_clock(trainer)
    max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
    max_epochs = trainer.max_epochs
    if max_epochs is None:  # Lightning's default (loops.utilities._parse_loop_limits)
        max_epochs = 1000 if max_steps is None and timer is None else -1
    max_epochs = max_epochs if max_epochs > 0 else None
    if timer is not None:
        others = [f"trainer.{k}={v}" for k, v in (("max_steps", max_steps), ("max_epochs", max_epochs)) if v]
        if others:
            raise BudgetError(
                f"trainer.max_time is the training budget and {' and '.join(others)} could end training before "
                f"it, with the LR schedule part-way: set {' '.join(o.split('=')[0] + '=-1' for o in others)}")
        return Budget("time", float(timer._duration))
    if max_steps is not None:
        counted = steps_in_epochs(trainer, datamodule, max_epochs, max_steps) if max_epochs else None
        if counted is None:
            return Budget("steps", max_steps)
        steps, epochs = counted
        if steps < max_steps:
            raise BudgetError(
                f"trainer.max_epochs={max_epochs} ends training at step {steps}, before the step budget "
                f"trainer.max_steps={max_steps}: set trainer.max_epochs=-1 to train {max_steps} steps "
                f"(or trainer.max_steps=-1 to train {max_epochs} epochs)")
        if steps == max_steps and epochs == max_epochs:
            return Budget("steps", max_steps)
        return Budget("steps", max_steps, warning=(
            f"trainer.max_steps={max_steps} ends training in epoch {epochs} of trainer.max_epochs={max_epochs}; "
            f"the LR schedule follows max_steps (set trainer.max_steps=-1 to train {max_epochs} epochs)"))
    if max_epochs is not None:
        return Budget("epochs", max_epochs)
    raise BudgetError("no training budget: set trainer.max_steps, trainer.max_epochs or trainer.max_time")
