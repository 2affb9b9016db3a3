"""ckpt_path=auto: which of a run's own checkpoints a restarted (e.g. requeued) job resumes from."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from deeph_lightning.preflight import SetupError
from deeph_lightning.resume import resolve_checkpoint
from deeph_lightning.training import run
from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def run_dir(train_lmdb, tmp_path_factory):
    """A 2-step run: checkpoints/last.ckpt (a real plain checkpoint, global_step 2)."""
    out = tmp_path_factory.mktemp("auto_run")
    run(compose(train_overrides(train_lmdb, 10**9, trainer__max_steps=2, trainer__max_epochs=1000,
                                test_after_training=False), out))
    return out


def age(path, seconds_ago: float) -> None:
    """Set the file's modification time to ``seconds_ago`` seconds before now."""
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_auto_takes_the_newest_readable_of_last_and_preemption_checkpoints(run_dir, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    last, hpc = out / "checkpoints" / "last.ckpt", out / "hpc_ckpt_1.ckpt"

    path, meta = resolve_checkpoint("auto", out)
    assert path == str(last) and meta["global_step"] == 2

    shutil.copy(last, hpc)  # what Lightning writes on SIGUSR1 (same format), after last.ckpt
    age(last, 60)
    age(hpc, 10)
    assert resolve_checkpoint("auto", out)[0] == str(hpc)
    age(last, 5)  # last.ckpt rewritten after the pre-emption checkpoint
    assert resolve_checkpoint("auto", out)[0] == str(last)

    # the newest file was cut short (job killed while writing): passed over, with a warning naming it
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) // 2)
    path, meta = resolve_checkpoint("auto", out)
    assert path == str(hpc) and meta["global_step"] == 2
    assert f"not resuming from {last}" in capsys.readouterr().err

    assert resolve_checkpoint("auto", tmp_path / "fresh") == (None, None)  # nothing yet: start fresh
    assert resolve_checkpoint(None, out) == (None, None)


def test_explicit_checkpoint_must_exist_and_be_ours(tmp_path):
    with pytest.raises(SetupError, match="no such checkpoint"):
        resolve_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path)
    (tmp_path / "other.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SetupError, match="not a deeph-lightning checkpoint"):
        resolve_checkpoint(str(tmp_path / "other.ckpt"), tmp_path)
