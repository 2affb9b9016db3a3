"""Resuming a run: which checkpoint (``ckpt_path=auto``: the run's newest readable one), whether the trainer can
resume it, and the loop counters of a checkpoint written after the fit loop closed an epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .callbacks.preemption import hpc_checkpoints
from .models.checkpoint import CheckpointError, checkpoint_meta, is_deepspeed_checkpoint
from .preflight import SetupError


def _is_checkpoint(path: Path) -> bool:
    """A plain checkpoint file or a DeepSpeed checkpoint folder."""
    return path.is_file() or is_deepspeed_checkpoint(path)


def _saved_at(path: Path) -> float:
    """When a checkpoint was last written; for a DeepSpeed folder (rewritten in place), its newest file."""
    if path.is_dir():
        return max(f.stat().st_mtime for f in path.rglob("*") if f.is_file())
    return path.stat().st_mtime


def resume_candidates(output_dir: Path, hpc_dir: Path | None = None) -> list[Path]:
    """The run's own checkpoints ``auto`` may resume from: ``checkpoints/last.ckpt`` and Lightning's
    pre-emption checkpoints ``hpc_ckpt_<n>.ckpt`` (written on SIGUSR1 into ``trainer.default_root_dir``)."""
    paths = [output_dir / "checkpoints" / "last.ckpt"]
    paths += hpc_checkpoints(hpc_dir or output_dir)
    return [p for p in paths if _is_checkpoint(p)]


def resolve_checkpoint(ckpt_path, output_dir: Path, hpc_dir: Path | None = None) -> tuple[str | None, dict | None]:
    """The checkpoint to resume from and its ``deeph`` metadata, or ``(None, None)`` to start fresh.

    ``auto``: the most recently written of the run's ``last.ckpt`` and ``hpc_ckpt_*.ckpt`` that reads back
    (a requeued job keeps the steps made after the last ``last.ckpt``; a file cut short when SLURM killed
    the job is passed over with a warning). Plain files and DeepSpeed folders.
    """
    if ckpt_path in (None, "", "null"):
        return None, None
    if str(ckpt_path) == "auto":
        for path in sorted(resume_candidates(output_dir, hpc_dir), key=_saved_at, reverse=True):
            try:
                return str(path), checkpoint_meta(path)
            except CheckpointError as err:
                print(f"warning: not resuming from {path}: {err}", file=sys.stderr, flush=True)
        return None, None
    if not _is_checkpoint(Path(ckpt_path)):
        raise SetupError(f"ckpt_path={ckpt_path}: no such checkpoint (a file, or a DeepSpeed checkpoint folder)")
    try:
        return str(ckpt_path), checkpoint_meta(ckpt_path)
    except CheckpointError as err:
        raise SetupError(str(err)) from None


def resolve_ckpt_path(ckpt_path, output_dir: Path, hpc_dir: Path | None = None) -> str | None:
    """Only the path of :func:`resolve_checkpoint`."""
    return resolve_checkpoint(ckpt_path, output_dir, hpc_dir)[0]


def strategy_mismatch(ckpt_path: str, strategy) -> str | None:
    """A DeepSpeed folder resumes only under DeepSpeed, a plain file only without it."""
    from pytorch_lightning.strategies import DeepSpeedStrategy

    folder, deepspeed = is_deepspeed_checkpoint(ckpt_path), isinstance(strategy, DeepSpeedStrategy)
    if folder and not deepspeed:
        return (f"ckpt_path={ckpt_path} is a DeepSpeed checkpoint folder: resume it with the same "
                "trainer=deepspeed_* config, or convert it with deeph_lightning.strategies.zero_to_plain_checkpoint")
    if deepspeed and not folder:
        return (f"ckpt_path={ckpt_path} is a plain checkpoint file but the trainer uses DeepSpeed, which resumes "
                "only from its own checkpoint folders; fine-tune from it with a non-DeepSpeed trainer")
    return None


def resume_where_training_stopped(checkpoint: dict) -> None:
    """Make a checkpoint written after the fit loop closed an epoch resume at the step it was written.

    A run that stops (``max_steps``, ``should_stop``) lets the fit loop count its epoch as finished, even
    part-way through, and ModelCheckpoint then writes ``last.ckpt`` in ``on_train_end``. Lightning 2.x resumes
    that state one epoch too far (Lightning issue #19617): the next epoch starts at the old epoch's batch
    position, so it is cut short, and the sampler, shuffled by epoch, serves other batches than an
    uninterrupted run. Such a state is recognised by the train sampler's saved epoch being the one before
    the epochs the fit loop counts as done; its loop counters are rewritten in place into those of a
    checkpoint written in ``on_train_batch_end`` of the same step, which Lightning resumes exactly (inside an
    epoch and at its end).
    """
    fit = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    epochs, batches = fit.get("epoch_progress"), fit.get("epoch_loop.batch_progress")
    stepped = fit.get("epoch_loop.state_dict") or {}
    samplers = (fit.get("state_dict") or {}).get("combined_loader") or [{}]
    if not epochs or not batches or "_batches_that_stepped" not in stepped or "epoch" not in samplers[0]:
        return
    e, b = epochs["current"], batches["total"]
    epoch_closed = e["processed"] == e["completed"] == int(samplers[0]["epoch"]) + 1
    batch_done = b["ready"] == b["started"] == b["processed"] == b["completed"] and batches["current"]["completed"] >= 1
    if not (epoch_closed and batch_done):
        return
    for p in (epochs["total"], epochs["current"]):
        done = p["completed"]
        p.update(ready=done, started=done, processed=done - 1, completed=done - 1)  # inside the epoch again
    for p in (batches["total"], batches["current"]):
        p["completed"] -= 1  # the last batch is processed, its on_train_batch_end hooks not yet finished
    stepped["_batches_that_stepped"] -= 1
