"""CSVLogger that continues metrics.csv on resume (Lightning's deletes it when the log folder is not empty).

Resuming from a checkpoint at global step s keeps the rows up to that checkpoint and drops the ones the
interrupted run logged after it (they are logged again, so they would appear twice). A fresh run into a
folder that already has a metrics.csv moves the old file aside as ``metrics.<time>.csv``.
"""

from __future__ import annotations

import csv
import time

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers.csv_logs import CSVLogger as _CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class AppendingExperimentWriter(ExperimentWriter):
    """Appends to an existing metrics.csv: its header becomes the known keys, so ``save()`` appends rows
    (and a new key rewrites the file with the wider header, keeping the old rows)."""

    def __init__(self, log_dir: str, resume_step: int | None = None) -> None:
        super().__init__(log_dir)
        if not self._fs.isfile(self.metrics_file_path):
            return
        if resume_step is None:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._fs.modified(self.metrics_file_path).timestamp()))
            self._fs.mv(self.metrics_file_path, self.metrics_file_path[: -len(".csv")] + f".{stamp}.csv")
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            self.metrics_keys = list(reader.fieldnames or [])
            rows = list(reader)
        # Lightning's step column is the global step minus one for rows logged at the end of a step
        kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < resume_step]
        if len(kept) < len(rows):
            self._write_rows(self.metrics_keys, kept)

    def _check_log_dir_exists(self) -> None:
        pass  # the parent's version deletes metrics.csv

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        self._write_rows(fieldnames, rows)

    def _write_rows(self, fieldnames: list[str], rows: list[dict]) -> None:
        # temp file then rename: a job killed while rewriting keeps the old file
        tmp = self.metrics_file_path + ".tmp"
        with self._fs.open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self._fs.mv(tmp, self.metrics_file_path)


class CSVLogger(_CSVLogger):
    """Lightning's CSVLogger with :class:`AppendingExperimentWriter`: a resumed run continues its metrics.csv.

    ``resume_step``: the global step of the checkpoint being resumed (``train.py`` sets it), None for a fresh run.
    """

    def __init__(self, *args, resume_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir, resume_step=self.resume_step)
        return self._experiment
