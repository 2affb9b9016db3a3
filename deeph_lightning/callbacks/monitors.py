"""Throughput logging and plain-text progress for non-interactive runs."""

from __future__ import annotations

import sys
import time

import pytorch_lightning as pl
import torch


def batch_matrix_elements(batch, basis) -> int:
    """Real (unpadded) H matrix elements in a batch: Σ_i n_i² + Σ_edges n_i n_j."""
    zmax = max(basis.elements)
    norb = torch.zeros(zmax + 1, dtype=torch.long)
    for z in basis.elements:
        norb[z] = basis.n_orbitals(z)
    n = norb[batch.atomic_numbers.cpu()]
    i, j = batch.edge_index.cpu()
    return int((n * n).sum() + (n[i] * n[j]).sum())


class ThroughputMonitor(pl.Callback):
    """Logs ``train/structures_per_s`` and ``train/matrix_elements_per_s`` (global, all ranks) per window."""

    def __init__(self, window: int = 10):
        self.window = max(1, int(window))
        self._reset()

    def _reset(self):
        self._t0 = None
        self._structures = 0
        self._elements = 0
        self._steps = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._structures += int(batch.num_graphs)
        self._elements += batch_matrix_elements(batch, pl_module.basis)
        self._steps += 1
        if self._steps < self.window:
            return
        dt = time.perf_counter() - self._t0
        counts = torch.tensor([self._structures, self._elements], dtype=torch.float64, device=pl_module.device)
        counts = trainer.strategy.reduce(counts, reduce_op="sum")
        pl_module.log("train/structures_per_s", float(counts[0]) / dt, batch_size=1)
        pl_module.log("train/matrix_elements_per_s", float(counts[1]) / dt, batch_size=1)
        self._reset()
        self._t0 = time.perf_counter()


class PlainProgressLog(pl.Callback):
    """One log line every ``every_n_steps`` steps and after each validation, when stdout is not a TTY
    (batch jobs, CI, pipes), where a progress bar would fill the log with carriage returns."""

    def __init__(self, every_n_steps: int = 50, force: bool = False):
        self.every_n_steps = max(1, int(every_n_steps))
        self.force = force
        self._t0 = time.perf_counter()

    @property
    def active(self) -> bool:
        return self.force or not sys.stdout.isatty()

    def _say(self, trainer, msg: str) -> None:
        if self.active and trainer.is_global_zero:
            print(f"[{time.perf_counter() - self._t0:8.1f}s] {msg}", flush=True)

    @staticmethod
    def _fmt(metrics: dict, keys) -> str:
        parts = []
        for k in keys:
            if k in metrics:
                parts.append(f"{k}={float(metrics[k]):.4g}")
        return " ".join(parts)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        n_params = sum(p.numel() for p in pl_module.net.parameters())
        self._say(trainer, f"training: {n_params:,} parameters, max_epochs={trainer.max_epochs}, max_steps={trainer.max_steps}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0:
            m = trainer.callback_metrics
            self._say(trainer, f"epoch {trainer.current_epoch} step {step}: "
                      + self._fmt(m, ("train/loss", "train/rmse_meV", "train/grad_norm", "train/structures_per_s")))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        self._say(trainer, f"validation after epoch {trainer.current_epoch} step {trainer.global_step}: "
                  + self._fmt(m, ("val/mae_meV", "val/mae_onsite_meV", "val/mae_hopping_meV")))
