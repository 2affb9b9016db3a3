"""What ``train.py`` does with a composed Hydra config: preflight, fit, test, summary.

Fails fast (``SetupError``, printed without a traceback by train.py) when the dataset or the
accelerator a config asks for is missing, before anything heavy starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .checkpoint import CheckpointError, checkpoint_meta
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


def resolve_ckpt_path(ckpt_path, output_dir: Path) -> str | None:
    """``auto``: the run's own ``checkpoints/last.ckpt`` when it exists (resume), else start fresh."""
    if ckpt_path in (None, "", "null"):
        return None
    if str(ckpt_path) == "auto":
        last = output_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    if not Path(ckpt_path).is_file():
        raise SetupError(f"ckpt_path={ckpt_path}: no such checkpoint")
    return str(ckpt_path)


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` in a callbacks/logger group (null entries are skipped)."""
    out = []
    for _, conf in (group or {}).items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            out.append(instantiate(conf))
    return out


def build_loggers(cfg: DictConfig, resume_meta: dict | None) -> list:
    loggers = []
    for name, conf in (cfg.get("logger") or {}).items():
        if not (isinstance(conf, DictConfig) and "_target_" in conf):
            continue
        conf = conf.copy()
        if "Wandb" in str(conf._target_):
            run_id = (resume_meta or {}).get("wandb_run_id")
            if run_id:  # continue the same W&B run after a resume
                OmegaConf.update(conf, "id", run_id, force_add=True)
                OmegaConf.update(conf, "resume", "allow", force_add=True)
            if conf.get("offline", False):
                os.environ.setdefault("WANDB_MODE", "offline")
        loggers.append(instantiate(conf))
    return loggers


def run(cfg: DictConfig, extra_callbacks: list | None = None) -> dict:
    """Train (and test) as configured; returns the final metrics and paths."""
    output_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(int(cfg.seed), workers=True)

    datamodule = instantiate(cfg.data)
    preflight(cfg, datamodule)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    resume_meta = None
    if ckpt_path:
        try:
            resume_meta = checkpoint_meta(ckpt_path)
        except CheckpointError as err:
            raise SetupError(str(err)) from None

    datamodule.prepare_data()
    model = instantiate(cfg.model, basis=datamodule.basis.to_dict(), cutoff=datamodule.cutoff)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    model.dft_recipe = datamodule.metadata.get("dft_recipe")

    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = build_loggers(cfg, resume_meta)
    enable_bar = cfg.trainer.get("enable_progress_bar")
    if enable_bar is None:
        enable_bar = sys.stdout.isatty()
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_progress_bar=enable_bar
    )
    if trainer.is_global_zero:
        n = sum(p.numel() for p in model.net.parameters())
        print(f"output: {output_dir}\ndataset: {datamodule.path} ({len(datamodule.records)} structures, "
              f"cutoff {datamodule.cutoff} Å)\nmodel: {cfg.model.net._target_} ({n:,} parameters)"
              + (f"\nresuming from {ckpt_path}" if ckpt_path else ""), flush=True)

    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    result = {"output_dir": str(output_dir), "val": {}, "test": {}}
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    result["best_checkpoint"] = best
    result["last_checkpoint"] = str(output_dir / "checkpoints" / "last.ckpt")
    result["val"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if cfg.get("test_after_training", True) and not trainer.fast_dev_run:
        metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        result["test"] = {k: float(v) for k, v in (metrics[0] if metrics else {}).items()}
    if trainer.is_global_zero:
        print_summary(result, loggers)
    return result


def print_summary(result: dict, loggers: list) -> None:
    def fmt(d, key):
        v = d.get(key)
        return "n/a" if v is None else f"{v:.2f} meV"

    lines = ["", "=" * 72, "training finished"]
    lines.append(f"  run folder        {result['output_dir']}")
    lines.append(f"  best checkpoint   {result.get('best_checkpoint') or 'n/a'}")
    lines.append(f"  last checkpoint   {result['last_checkpoint']}")
    for lg in loggers:
        save_dir = getattr(lg, "save_dir", None) or getattr(lg, "log_dir", None)
        lines.append(f"  {type(lg).__name__:<17} {save_dir}")
    for split in ("val", "test"):
        d = result[split]
        if d:
            lines.append(
                f"  {split + ' H MAE':<17} {fmt(d, f'{split}/mae_meV')} (on-site {fmt(d, f'{split}/mae_onsite_meV')}, "
                f"hopping {fmt(d, f'{split}/mae_hopping_meV')})"
            )
    lines.append("  load it with: deeph_lightning.load_model('<checkpoint>')")
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)
