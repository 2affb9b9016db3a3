"""What ``train.py`` does with a composed Hydra config: preflight (``preflight``), resume (``resume``), the
training budget (``budget``), fit, test, summary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from data_prep.gauge import ATOM_GAUGES, HUCKEL_K
from deeph_eval.model_io import recipe_differences

from .budget import BudgetError, training_budget
from .callbacks import CSVLogger, SlurmRequeue
from .finetune import FineTuneError, FineTuneStart, add_elements, data_problems, finetune_start, started_as
from .module import AUTO_STATS
from .preflight import SetupError, preflight
from .resume import resolve_checkpoint, strategy_mismatch
from .run_folder import RunFolderError, check_run_folder


def output_statistics(datamodule, resume_meta: dict | None, target_gauge: str = "raw", mode: str = "auto",
                      atom_onsite: dict | None = None, huckel_k: float = HUCKEL_K) -> dict:
    """``model.block_stats=auto|auto_flat``: the network's output scale/shift tables (``models.block_scale``),
    from the checkpoint being resumed (the very same tables), else from the training split's targets in
    ``target_gauge``."""
    stats = ((resume_meta or {}).get("net") or {}).get("block_stats")
    if stats:
        return stats
    return datamodule.block_statistics(target_gauge=target_gauge, decay=mode == "auto", atom_onsite=atom_onsite,
                                       huckel_k=huckel_k)


def atom_reference(datamodule, resume_meta: dict | None, target_gauge: str) -> dict | None:
    """``model.target_gauge=atoms|huckel``: the isolated-atom on-site table, from the checkpoint being resumed,
    else for the dataset's DFT recipe; None for the other gauges."""
    if target_gauge not in ATOM_GAUGES:
        return None
    return (resume_meta or {}).get("atom_onsite") or datamodule.atom_onsite_table()


def start_from(cfg: DictConfig, datamodule) -> FineTuneStart | None:
    """``finetune_from``: the trained model the run starts from, checked against the data (``finetune``) and
    extended by the data's new elements; the data is then padded to the model's element table."""
    source = cfg.get("finetune_from")
    if not source:
        return None
    try:
        start = finetune_start(str(source))
    except FineTuneError as err:
        raise SetupError(str(err)) from None
    problems = data_problems(start, datamodule.records.basis, datamodule.cutoff, datamodule.path)
    if problems:
        raise SetupError(f"cannot fine-tune {source}: " + "; ".join(problems))
    for setting in start.overridden(cfg.model):
        print(f"note: {setting} is ignored: fine-tuning keeps the model {source} was trained as", file=sys.stderr,
              flush=True)
    diffs = recipe_differences(start.meta.get("dft_recipe"), datamodule.metadata.get("dft_recipe"))
    if diffs:
        print(f"warning: {datamodule.path} was computed with another DFT recipe than {source}'s training data "
              f"({'; '.join(diffs)}): fine-tuning teaches the model the new recipe", file=sys.stderr, flush=True)
    try:
        start = add_elements(start, datamodule, str(cfg.get("finetune_element_init", "group")))
    except FineTuneError as err:
        raise SetupError(str(err)) from None
    if start.added_elements:
        added = start.provenance()
        init = started_as(added["element_init"])
        print(f"note: fine-tuning adds {', '.join(added['added_elements'])} to {source}'s elements: embeddings "
              f"{'start ' + init if init else 'start untrained'}, output statistics from the training split",
              file=sys.stderr, flush=True)
    return start


def build(group: str, conf: DictConfig, **kwargs):
    """``instantiate(conf)``; a config value the target rejects (``trainer.max_steps=abc``) is a ``SetupError``."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(conf, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(err).splitlines()[0]
        raise SetupError(f"config group {group} ({conf.get('_target_')}) rejects its values: "
                         f"{' '.join(detail.split())}{_overrides_of(group)}") from None


def _overrides_of(group: str) -> str:
    """The command-line overrides of ``group`` (when run by train.py), the likely culprits of a rejected value."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    mine = [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").startswith(f"{group}.")]
    return f" (command-line values: {', '.join(mine)})" if mine else f" (check the {group}.* values)"


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
        if get_class(str(conf._target_)) is CSVLogger and resume_meta:
            OmegaConf.update(conf, "resume_step", int(resume_meta.get("global_step", 2**62)), force_add=True)
        loggers.append(instantiate(conf))
    return loggers


def run(cfg: DictConfig, extra_callbacks: list | None = None) -> dict:
    """Train (and test) as configured; returns the final metrics and paths."""
    output_dir = Path(cfg.paths.output_dir)
    pl.seed_everything(int(cfg.seed), workers=True)

    datamodule = build("data", cfg.data)
    preflight(cfg, datamodule)
    hpc_dir = cfg.trainer.get("default_root_dir")
    try:
        check_run_folder(output_dir, cfg.get("ckpt_path"), hpc_dir)
    except RunFolderError as err:
        raise SetupError(str(err)) from None
    ckpt_path, resume_meta = resolve_checkpoint(cfg.get("ckpt_path"), output_dir, Path(hpc_dir) if hpc_dir else None)

    datamodule.prepare_data()
    start = start_from(cfg, datamodule)
    extra = start.model_kwargs() if start else {}
    source_meta = resume_meta or (start.meta if start else None)  # tables that define the model being continued
    gauge = extra.get("target_gauge", cfg.model.get("target_gauge", "raw"))
    atom_onsite = atom_reference(datamodule, source_meta, gauge)
    if atom_onsite is not None:
        extra["atom_onsite"] = atom_onsite
    if cfg.model.get("block_stats") in AUTO_STATS:
        extra["block_stats"] = output_statistics(datamodule, source_meta, gauge, cfg.model.block_stats, atom_onsite,
                                                 extra.get("huckel_k", cfg.model.get("huckel_k", HUCKEL_K)))
    model = build("model", cfg.model, basis=datamodule.basis.to_dict(), cutoff=datamodule.cutoff, **extra)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    model.dft_recipe = datamodule.metadata.get("dft_recipe")
    model.training_bonds = datamodule.training_bonds()
    if start:
        model.training_bonds = start.training_bonds(model.training_bonds)
        model.finetuned_from = start.provenance()
        if not ckpt_path:  # a resumed fine-tuning run has its own weights
            start.load_into(model)

    requeue = SlurmRequeue(cfg.trainer.get("default_root_dir") or output_dir)
    callbacks = instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or []) + [requeue]
    loggers = build_loggers(cfg, resume_meta)
    enable_bar = cfg.trainer.get("enable_progress_bar")
    if enable_bar is None:
        enable_bar = sys.stdout.isatty()
    trainer: pl.Trainer = build(
        "trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_progress_bar=enable_bar
    )
    mismatch = ckpt_path and strategy_mismatch(ckpt_path, trainer.strategy)
    if mismatch:
        raise SetupError(mismatch)
    try:
        budget = training_budget(trainer, datamodule)
    except BudgetError as err:
        raise SetupError(str(err)) from None
    if trainer.is_global_zero:
        if budget.warning:
            print(f"warning: {budget.warning}", file=sys.stderr, flush=True)
        n = sum(p.numel() for p in model.net.parameters())
        print(f"output: {output_dir}\ndataset: {datamodule.path} ({len(datamodule.records)} structures, "
              f"cutoff {datamodule.cutoff} Å)\nmodel: {model.net_config['_target_']} ({n:,} parameters)"
              f"\nbudget: {budget.describe()}"
              + (f"\nfine-tuning {start.source} (trained {start.meta.get('global_step', 0)} steps)" if start else "")
              + (f"\nresuming from {ckpt_path}" if ckpt_path else ""), flush=True)

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

        result = {"output_dir": str(output_dir), "val": {}, "test": {}}
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        result["best_checkpoint"] = best
        result["last_checkpoint"] = str(output_dir / "checkpoints" / "last.ckpt")
        result["val"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        result["requeued"] = requeue.requeued
        if cfg.get("test_after_training", True) and not trainer.fast_dev_run and not requeue.requeued:
            metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
            result["test"] = {k: float(v) for k, v in (metrics[0] if metrics else {}).items()}
    finally:
        finish_wandb(loggers)
    if trainer.is_global_zero:
        print_summary(result, loggers)
    return result


def finish_wandb(loggers: list) -> None:
    """End this run's W&B run, so the next run in the same process (tests, Hydra sweeps with the basic
    launcher) starts its own instead of WandbLogger silently reusing the active one."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def print_summary(result: dict, loggers: list) -> None:
    def fmt(d, key):
        v = d.get(key)
        return "n/a" if v is None else f"{v:.2f} meV"

    state = "stopped by pre-emption: the job is requeued and resumes" if result.get("requeued") else "finished"
    lines = ["", "=" * 72, f"training {state}"]
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
    best = result.get("best_checkpoint")
    if best:  # one machine-readable line for scripts: grep '^BEST_CHECKPOINT=' | cut -d= -f2-
        lines.append(f"BEST_CHECKPOINT={Path(best).resolve()}")
    print("\n".join(lines), flush=True)
