"""Checks before a training run starts: the dataset and the accelerator a config asks for exist.

Fails fast (``SetupError``, printed without a traceback by train.py), before anything heavy starts.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .datamodule import DataConfigError


class SetupError(RuntimeError):
    """Something the run needs is missing; the message says what and how to fix it."""


def accelerator_problem(trainer_cfg: DictConfig) -> str | None:
    acc = str(trainer_cfg.get("accelerator", "auto"))
    devices = trainer_cfg.get("devices", "auto")
    if acc in ("gpu", "cuda"):
        have = torch.cuda.device_count()
        if have == 0:
            return (
                f"trainer.accelerator={acc} but this machine has no CUDA GPU (torch {torch.__version__}, "
                f"cuda available: {torch.cuda.is_available()}); run on a GPU node or override "
                "trainer=cpu for a CPU run"
            )
        if isinstance(devices, int) and devices > have:
            return f"trainer.devices={devices} but only {have} GPU(s) are visible"
    return None


def preflight(cfg: DictConfig, datamodule) -> None:
    problems = []
    try:
        datamodule.check_available()
    except DataConfigError as err:
        problems.append(str(err))
    acc = accelerator_problem(cfg.trainer)
    if acc:
        problems.append(acc)
    if problems:
        raise SetupError("cannot start training:\n  - " + "\n  - ".join(problems))
