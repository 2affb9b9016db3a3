"""``last.ckpt`` at the step the run stopped (Lightning's ModelCheckpoint may leave it behind)."""

from __future__ import annotations

import pytorch_lightning as pl


class LastCheckpoint(pl.callbacks.ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` steps and at the end of training.

    Lightning's ModelCheckpoint writes ``last.ckpt`` at the end of training only if it wrote none during the
    run, so ``last.ckpt`` could lag the final step. Here the end of training always writes it unless it
    already holds the current step. (No epoch-end saves: a ``last.ckpt`` written in ``on_train_epoch_end``
    resumed with another loss than an uninterrupted run, test_resume_after_max_steps.)
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_top_k", 0)
        super().__init__(**kwargs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # fitting, not sanity check, step not saved yet
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
