"""SLURM pre-emption: on SIGUSR1 (``--signal=SIGUSR1@90``) save a checkpoint and requeue the job.

Lightning's own SLURM handler saves the checkpoint from inside the signal handler. Under DDP or DeepSpeed
that save is a collective, and each rank is interrupted at a different point of its step (one inside the
gradient all-reduce, another already waiting in the save's barrier): the ranks can hang until the time limit
(seen once in CI). Here the handler only sets a flag; at the end of each training step every rank joins one
tiny all-reduce of the flags, and if any rank was signalled, all of them checkpoint at the same step boundary.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else the job id."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


_HPC_NAME = re.compile(r"hpc_ckpt_(\d+)\.ckpt")


def hpc_checkpoints(folder: Path) -> list[Path]:
    """The pre-emption checkpoints ``hpc_ckpt_<n>.ckpt`` in ``folder`` (Lightning's naming), by n."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("hpc_ckpt_*.ckpt") if (m := _HPC_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def next_hpc_checkpoint(folder: Path) -> Path:
    """``hpc_ckpt_<n+1>.ckpt`` after the highest ``hpc_ckpt_<n>.ckpt`` in ``folder``."""
    existing = hpc_checkpoints(folder)
    n = int(_HPC_NAME.fullmatch(existing[-1].name).group(1)) if existing else 0
    return folder / f"hpc_ckpt_{n + 1}.ckpt"


class SlurmRequeue(pl.Callback):
    """Checkpoint and ``scontrol requeue`` at the first training-step boundary after SIGUSR1.

    Active only inside a SLURM job whose SIGUSR1 nobody else handles (submitit installs its own handler for
    Hydra sweeps and resubmits the point itself). The checkpoint is written under a temporary name and renamed
    once complete, so a job killed mid-save leaves no truncated ``hpc_ckpt_<n>.ckpt`` for the restart to pick.
    After a successful requeue training stops (``requeued`` is then true) and SLURM restarts the job.
    """

    def __init__(self, folder: str | Path, signum: int = signal.SIGUSR1):
        self.folder = Path(folder)
        self.signum = signum
        self.signalled = False
        self.requeued = False
        self._previous = None
        self._armed = False

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True  # only a flag: the collective work waits for the step boundary

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Runs before Lightning registers its signal handlers; finding ours there, it adds none for SIGUSR1.
        if stage != "fit" or slurm_job_id() is None:
            return
        current = signal.getsignal(self.signum)
        if current not in (None, signal.SIG_DFL):
            return
        self._previous = current
        signal.signal(self.signum, self._on_signal)
        self._armed = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._armed and signal.getsignal(self.signum) != self._on_signal:
            raise RuntimeError(f"SlurmRequeue: another handler replaced ours for signal {self.signum}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self._armed or self.requeued:
            return
        if not trainer.strategy.reduce_boolean_decision(self.signalled, all=False):
            return
        path = Path(trainer.strategy.broadcast(str(next_hpc_checkpoint(self.folder))))
        partial = path.with_name(path.name + ".partial")
        if trainer.is_global_zero:
            print(f"pre-emption signal: saving {path} at step {trainer.global_step}", flush=True)
        trainer.save_checkpoint(partial)  # all ranks (a DeepSpeed checkpoint is one folder written by every rank)
        trainer.strategy.barrier("SlurmRequeue.saved")
        if trainer.is_global_zero:
            os.replace(partial, path)
            self.requeued = self._requeue()
        self.requeued = trainer.strategy.broadcast(self.requeued)
        self.signalled = False
        trainer.should_stop = self.requeued

    @staticmethod
    def _requeue() -> bool:
        job = slurm_job_id()
        try:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            why = result.stderr.strip() or f"exit code {result.returncode}"
        except FileNotFoundError:
            result, why = None, "scontrol not found"
        if result is not None and result.returncode == 0:
            print(f"requeued SLURM job {job}; it restarts and resumes with ckpt_path=auto", flush=True)
            return True
        print(f"warning: `scontrol requeue {job}` failed ({why}); training "
              "goes on until the time limit. Resubmit the same command with ckpt_path=auto to resume.",
              file=sys.stderr, flush=True)
        return False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._armed:
            signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)
            self._armed = False
