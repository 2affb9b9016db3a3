"""The LightningModule that trains a Hamiltonian network on H blocks.

* Loss on the real orbitals of each block only: ``mse``, ``mae`` or ``gauge`` (gauge-invariant),
  the helpers of ``deeph_lightning.models.losses``. The masked sums are normalised by the number of
  masked entries of the *global* batch (summed over DDP ranks), so DDP(n) computes exactly the
  gradient of one process on the union of the ranks' batches.
* Targets in the raw DFT gauge, standardised (``target_gauge``: per structure H - μ·S, μ = <H,S>/<S,S>
  over its masked blocks), in the atoms gauge (μ aligning its on-site blocks with its isolated atoms) or as
  the residual of the huckel reference H0 (``data_prep.gauge``); predictions projected the same way; the
  checkpoint records which (and the atoms, K).
* Metrics in meV (``metrics.BlockErrorAccumulator``), raw and gauge-invariant; validation/test use the EMA
  weights (``ema``).
* AdamW; warm-up + cosine (per step) over the training budget (``budget``: steps, epochs or wall time) or
  reduce-on-plateau (per validation); gradient clipping and precision come from the Trainer.
* Checkpoints carry everything ``load_model`` needs under ``checkpoint["deeph"]`` (``models.checkpoint``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytorch_lightning as pl
import torch

from data_prep.basis import BasisTable
from data_prep.gauge import HUCKEL_K

from .budget import training_budget
from .ema import averaged_copy, update_average
from .metrics import BlockErrorAccumulator
from .models.checkpoint import build_net, describe
from .models.gauge import ATOM_GAUGES, atom_reference_tensor, check_gauge, gauge_projection, gauge_targets
from .resume import resume_where_training_stopped


def quiet_known_warnings() -> None:
    """Silence third-party warnings a user can do nothing about, each at the module that raises it.

    Lightning's CombinedLoader (``pytorch_lightning.utilities._pytree``) builds torch's deprecated
    ``LeafSpec`` every time a loop wraps its dataloaders; torch's FutureWarning came back at every validation
    (any change of the warning filters, e.g. a ``catch_warnings`` block, re-arms a "shown once" warning).
    """
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")


quiet_known_warnings()


def _plain(x):
    """DictConfig/ListConfig -> plain containers (checkpoints must load with ``weights_only=True``)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def cosine(progress: float, min_ratio: float) -> float:
    progress = min(1.0, max(0.0, progress))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float):
    """LR factor of a step: linear warm-up, then a cosine reaching ``min_ratio`` at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return cosine((step - warmup_steps) / max(1, total_steps - warmup_steps), min_ratio)

    return factor


def warmup_cosine_over(warmup_steps: int, progress, min_ratio: float):
    """LR factor of a step: linear warm-up, then a cosine over ``progress()``, the fraction of the budget spent."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return cosine(progress(), min_ratio)

    return factor


AUTO_STATS = ("auto", "auto_flat")  # block_stats computed from the training split; auto_flat: no hopping fall-off


class HamiltonianModule(pl.LightningModule):
    def __init__(
        self,
        net: dict,
        basis: dict | BasisTable,
        cutoff: float,
        loss: str = "mse",
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        ema_decay: float | None = 0.999,
        per_pair_metrics: bool = True,
        block_stats: dict | str | None = None,
        target_gauge: str = "raw",
        onsite_weight: float = 1.0,
        first_shell_weight: float = 1.0,
        atom_onsite: dict | None = None,
        huckel_k: float = HUCKEL_K,
    ):
        super().__init__()
        net = dict(_plain(net))
        block_stats = _plain(block_stats)
        if isinstance(block_stats, dict):  # part of the net's config: saved in checkpoints, rebuilt by load_model
            net["block_stats"] = block_stats
        elif block_stats is not None and block_stats not in AUTO_STATS:
            raise ValueError(f"model.block_stats must be auto, auto_flat, null or a dict of tables, got {block_stats!r}")
        elif block_stats is not None and "block_stats" not in net:
            raise ValueError(f"model.block_stats={block_stats}: the training code computes the tables from the "
                             "training split (deeph_lightning.training.run); pass the tables themselves here")
        basis = basis if isinstance(basis, BasisTable) else BasisTable.from_dict(_plain(basis))
        optimizer = dict(_plain(optimizer) or {})
        scheduler = dict(_plain(scheduler) or {"name": "none"})
        if loss not in ("mse", "mae", "gauge"):
            raise ValueError(f"model.loss must be 'mse', 'mae' or 'gauge', got {loss!r}")
        # training settings only: the network, basis and cutoff are stored once, in checkpoint["deeph"]
        self.save_hyperparameters(
            {"loss": loss, "optimizer": optimizer, "scheduler": scheduler, "ema_decay": ema_decay,
             "per_pair_metrics": per_pair_metrics, "onsite_weight": float(onsite_weight),
             "first_shell_weight": float(first_shell_weight)}
        )
        self.net_config = net
        self.target_gauge = check_gauge(target_gauge, "model.target_gauge")  # stored once, in checkpoint["deeph"]
        # the atoms/huckel gauges' isolated-atom on-site blocks {"Z": (n_orb, n_orb)}, stored in checkpoint["deeph"]
        self.atom_onsite = _plain(atom_onsite) if target_gauge in ATOM_GAUGES else None
        if target_gauge in ATOM_GAUGES and not self.atom_onsite:
            raise ValueError(f"model.target_gauge={target_gauge}: the training code supplies the isolated-atom table "
                             "(datamodule.atom_onsite_table, from the dataset's DFT recipe); pass it as atom_onsite")
        self.huckel_k = float(huckel_k) if target_gauge == "huckel" else None
        self.basis = basis
        self.cutoff = float(cutoff)
        self.net = build_net(net, basis, self.cutoff)
        if self.atom_onsite is not None:
            self.register_buffer("atom_reference", atom_reference_tensor(self.atom_onsite, basis), persistent=False)
        self.ema = None
        if ema_decay:
            self.ema = averaged_copy(self.net, float(ema_decay))
        self.run_config: dict | None = None  # resolved Hydra config, set by train.py, saved in checkpoints
        # the training data's DFT recipe (metadata.json "dft_recipe": basis, xc, pseudo, code), saved in
        # checkpoints so evaluation can compute S(R) for new structures without the dataset
        self.dft_recipe: dict | None = None
        # the training split's nearest-neighbour bonds per element pair (data_prep.bonds), set by the training code,
        # saved in checkpoints so evaluation can name the bonds of a structure that training never had
        self.training_bonds: dict | None = None
        # the model a fine-tuning run started from ({"source", "global_step", "dft_recipe"}), set by the training code
        self.finetuned_from: dict | None = None
        self._acc: dict[str, BlockErrorAccumulator] = {}

    # --- forward / loss ---------------------------------------------------------------------------
    def forward(self, batch) -> dict:
        return self.net(batch)

    def eval_net(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.net

    def _cast(self, batch):
        """Float fields of the batch to the parameters' dtype (float64 runs; data stored as float32)."""
        dtype = next(self.net.parameters()).dtype
        for key in ("pos", "cell", "cell_shift", "h_node", "h_edge", "s_node", "s_edge", "fermi_level"):
            if key in batch and batch[key].is_floating_point() and batch[key].dtype != dtype:
                batch[key] = batch[key].to(dtype)
        gauge_targets(batch, self.basis, self.target_gauge, self._atoms(), self.huckel_k)
        return batch

    def _atoms(self) -> torch.Tensor | None:
        """(Zmax+1, M, M) isolated-atom on-site blocks (atoms and huckel gauges), else None."""
        return None if self.atom_onsite is None else self.atom_reference

    def _loss_and_count(self, batch, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss over this rank's masked block entries (``models.losses``) and the entry count."""
        from .models import losses

        out = {k: (v.float() if v.dtype in (torch.float16, torch.bfloat16) else v) for k, v in out.items()}
        fn = {"mse": losses.mse_loss, "mae": losses.mae_loss, "gauge": losses.gauge_invariant_loss}[self.hparams.loss]
        w, fs = float(self.hparams.onsite_weight), float(self.hparams.get("first_shell_weight", 1.0))
        return fn(out, batch, self.basis, w, fs), losses.entry_count(batch, self.basis, w, fs).to(torch.float64)

    def _predict(self, net, batch) -> dict:
        """The network's blocks; for standardised (atoms) targets projected onto <H, S> = 0 (onto the atoms'
        zero) as the targets are; for huckel ones the residual H - H0, projected the same way."""
        return gauge_projection(net(batch), batch, self.basis, self.target_gauge, self._atoms())

    def training_step(self, batch, batch_idx: int):
        batch = self._cast(batch)
        out = self._predict(self.net, batch)
        mean, count = self._loss_and_count(batch, out)
        local_sum = mean * count.to(mean.dtype)
        stats = self.trainer.strategy.reduce(torch.stack([local_sum.detach().double(), count]), reduce_op="sum")
        # DDP averages gradients over ranks: scale so that the average is d(global sum / global count),
        # i.e. exactly the gradient one process would get on the union of the ranks' batches.
        loss = local_sum * (self.trainer.world_size / stats[1]).to(mean.dtype)
        logged = (stats[0] / stats[1]).float()
        self.last_train_loss = logged.detach()  # global-batch loss, the same on every rank
        self.log("train/loss", logged, prog_bar=True, batch_size=batch.num_graphs)
        if self.hparams.loss in ("mse", "gauge"):
            self.log("train/rmse_meV", logged.sqrt() * 1000.0, prog_bar=True, batch_size=batch.num_graphs)
        else:
            self.log("train/mae_meV", logged * 1000.0, prog_bar=True, batch_size=batch.num_graphs)
        return loss

    def _deepspeed_engine(self):
        return getattr(self.trainer.strategy, "deepspeed_engine", None)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._deepspeed_engine() is not None:
            return  # ZeRO keeps reduced gradients in its own partitions (p.grad is None): see optimizer_step
        norms = [p.grad.detach().norm() for p in self.net.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm(), batch_size=1)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        engine = self._deepspeed_engine()
        if engine is not None and engine.get_global_grad_norm() is not None:
            # DeepSpeed's norm of the full reduced gradient, before clipping, as logged above without DeepSpeed
            self.log("train/grad_norm", float(engine.get_global_grad_norm()), batch_size=1)
        self._update_ema()

    def _update_ema(self) -> None:
        """After every optimizer step (not micro-batch), before any callback's on_train_batch_end, so a
        checkpoint written at that step (last.ckpt) holds the EMA of exactly the weights it holds."""
        if self.ema is not None:
            update_average(self.ema, self.net)

    # --- validation / test ------------------------------------------------------------------------
    def _eval_step(self, stage: str, batch) -> None:
        batch = self._cast(batch)
        out = self._predict(self.eval_net(), batch)
        acc = self._acc.get(stage)
        if acc is None:
            acc = self._acc[stage] = BlockErrorAccumulator(self.basis, device=self.device)
        acc.update(batch, out)

    def _eval_epoch_end(self, stage: str) -> None:
        acc = self._acc.pop(stage, None)
        if acc is None:
            return
        acc.load_tensors(self.trainer.strategy.reduce(acc.tensors(), reduce_op="sum"))
        summary = acc.summary(per_pair=self.hparams.per_pair_metrics)
        for name, value in summary.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "mae_meV", sync_dist=False, rank_zero_only=False)
        self.last_metrics = {f"{stage}/{k}": v for k, v in summary.items()}

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # --- optimisation -----------------------------------------------------------------------------
    def _schedule(self, warmup_steps: int, min_ratio: float, total_steps: int | None):
        """The warm-up + cosine factor, sized to the training budget (``budget``).

        Not trainer.estimated_stepping_batches: it sets up the train loader before a checkpoint is
        restored, and Lightning then never hands the loader its saved position (no exact resume).
        """
        budget = training_budget(self.trainer, self.trainer.datamodule)
        total_steps = total_steps or budget.steps
        if total_steps:
            return warmup_cosine(warmup_steps, int(total_steps), min_ratio)
        return warmup_cosine_over(warmup_steps, budget.progress(self.trainer), min_ratio)

    def configure_optimizers(self) -> Any:
        opt_cfg = dict(self.hparams.optimizer)
        lr = float(opt_cfg.pop("lr", 1e-3))
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=lr, **opt_cfg)
        sched = dict(self.hparams.scheduler)
        name = sched.pop("name", "none")
        if name == "none":
            return optimizer
        if name == "warmup_cosine":
            fn = self._schedule(int(sched.get("warmup_steps", 0)), float(sched.get("min_lr_ratio", 0.01)),
                                sched.get("total_steps"))
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if name == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=float(sched.get("factor", 0.5)), patience=int(sched.get("patience", 5)),
                min_lr=float(sched.get("min_lr", 0.0)),
            )
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": sched.get("monitor", "val/mae_meV"),
                                     "interval": "epoch"}}
        raise ValueError(f"unknown scheduler {name!r} (use none, warmup_cosine or plateau)")

    def on_train_start(self) -> None:
        # A resumed run's optimizer holds the LR of the budget it was saved with: set that of this run's budget
        # (the same value unless the budget changed, e.g. a raised trainer.max_steps).
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * fn(scheduler.last_epoch)

    # --- checkpoints ------------------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        resume_where_training_stopped(checkpoint)  # before Lightning restores its loops from it
        trained = (checkpoint.get("deeph") or {}).get("target_gauge", "raw")
        if trained != self.target_gauge:
            warnings.warn(f"the checkpoint was trained on {trained} targets and this run trains on {self.target_gauge} "
                          "ones (model.target_gauge): the weights learned another energy zero, so the on-site "
                          "blocks start off by each structure's μ·S", stacklevel=2)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        wandb_id = None
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                wandb_id = logger.version
        checkpoint["deeph"] = describe(
            self.net_config, self.basis, self.cutoff, has_ema=self.ema is not None,
            dtype=next(self.net.parameters()).dtype, config=self.run_config, dft_recipe=self.dft_recipe,
            wandb_run_id=wandb_id, global_step=self.global_step, target_gauge=self.target_gauge,
            atom_onsite=self.atom_onsite, huckel_k=self.huckel_k, training_bonds=self.training_bonds,
            finetuned_from=self.finetuned_from,
        )
