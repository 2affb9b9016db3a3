"""SlurmRequeue in one process: SIGUSR1 -> hpc checkpoint at the next step end; a refused requeue lets
training go on. (The requeue itself, with 2 ranks, is tests/slurm/test_slurm_training.py.)"""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl
import torch

from deeph_lightning.resume import resolve_checkpoint
from deeph_lightning.training import run

from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


class SignalAt(pl.Callback):
    """Sends this process SIGUSR1 at the end of one training step, as SLURM does before the time limit."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_signal_checkpoints_at_the_next_step_and_a_refused_requeue_lets_training_finish(train_lmdb, tmp_path,
                                                                                        monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "999999999")  # no such job: scontrol (if installed) refuses the requeue
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    cfg = compose(train_overrides(train_lmdb, 10**9, trainer__max_steps=5, trainer__max_epochs=1000,
                                  test_after_training=False), tmp_path)
    result = run(cfg, extra_callbacks=[SignalAt(2)])
    err = capsys.readouterr()
    assert "pre-emption signal: saving" in err.out and "scontrol requeue 999999999` failed" in err.err
    assert result["requeued"] is False
    hpc = tmp_path / "hpc_ckpt_1.ckpt"
    assert hpc.is_file() and not list(tmp_path.glob("*.partial"))
    assert torch.load(hpc, map_location="cpu", weights_only=False)["global_step"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 5
    assert resolve_checkpoint("auto", tmp_path)[0] == str(tmp_path / "checkpoints" / "last.ckpt")  # the newer one
    assert signal.getsignal(signal.SIGUSR1) == before, "the SIGUSR1 handler was not restored"
