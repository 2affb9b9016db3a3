"""CSVLogger that keeps metrics.csv on resume (Lightning's deletes it when the log folder is not empty)."""

from __future__ import annotations

import csv

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers.csv_logs import CSVLogger as _CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class AppendingExperimentWriter(ExperimentWriter):
    """Appends to an existing metrics.csv: its header becomes the known keys, so ``save()`` appends rows
    (and a new key rewrites the file with the wider header, keeping the old rows)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])

    def _check_log_dir_exists(self) -> None:
        pass  # the parent's version deletes metrics.csv

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        # temp file then rename: a job killed while rewriting keeps the old file
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        tmp = self.metrics_file_path + ".tmp"
        with self._fs.open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self._fs.mv(tmp, self.metrics_file_path)


class CSVLogger(_CSVLogger):
    """Lightning's CSVLogger with :class:`AppendingExperimentWriter`: a resumed run continues its metrics.csv."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
