"""logger=csv: a run resumed into its own folder (ckpt_path=auto) continues csv/metrics.csv."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from deeph_lightning.training import SetupError, run

from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


def train_steps(dataset: Path, out: Path, max_steps: int, **kw) -> list[tuple[int, str]]:
    """Train ``out`` up to ``max_steps``; returns the (step, train/loss) rows of its metrics.csv."""
    run(compose(train_overrides(dataset, 10**9, trainer__max_steps=max_steps, trainer__max_epochs=1000,
                                trainer__log_every_n_steps=1, test_after_training=False, **kw), out))
    with open(out / "csv" / "metrics.csv") as f:
        return [(int(r["step"]), r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_resumed_run_appends_to_metrics_csv(train_lmdb, tmp_path):
    before = train_steps(train_lmdb, tmp_path, 2)
    assert [step for step, _ in before] == [0, 1]  # Lightning's step column: global step minus one

    after = train_steps(train_lmdb, tmp_path, 4, ckpt_path="auto")
    assert after[:2] == before, "the rows logged before the resume were lost"
    assert len(after) == 4 and 1 < after[2][0] < after[3][0], after  # the resumed steps follow them
    lines = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert lines.count(lines[0]) == 1 and "train/loss" in lines[0], "header missing or written twice"


def test_rows_logged_after_the_resumed_checkpoint_are_not_repeated(train_lmdb, tmp_path):
    """A job killed at step 4 whose last checkpoint is from step 2: the resumed run logs steps 3-4 again,
    so metrics.csv must drop the killed run's rows for them. A fresh run into the folder (refused while it holds
    the old run's checkpoints) starts a new file."""
    train_steps(train_lmdb, tmp_path, 2)
    at_step_2 = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    killed = train_steps(train_lmdb, tmp_path, 4, ckpt_path="auto")
    assert [s for s, _ in killed] == [0, 1, 2, 3]
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(at_step_2)  # the run "died" before saving step 4

    resumed = train_steps(train_lmdb, tmp_path, 4, ckpt_path="auto")
    assert [s for s, _ in resumed] == [0, 1, 2, 3], resumed
    assert resumed[:2] == killed[:2]

    with pytest.raises(SetupError, match="already holds an earlier run"):  # a fresh run would mix two runs
        train_steps(train_lmdb, tmp_path, 1)
    shutil.rmtree(tmp_path / "checkpoints")  # the user discards the run's checkpoints, keeps its logs
    fresh = train_steps(train_lmdb, tmp_path, 1)
    assert [s for s, _ in fresh] == [0]
    old = list((tmp_path / "csv").glob("metrics.*.csv"))
    assert len(old) == 1 and old[0].read_text().count("\n") > 4, "the previous run's metrics were not kept"
