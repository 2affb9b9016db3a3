"""DeepSpeed ZeRO on 2 CPU processes (CPUDeepSpeedStrategy, gloo) with the real model on real DFT blocks:
the loss curve equals DDP's, a ZeRO checkpoint resumes, and converts to a plain checkpoint for load_model."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_helpers import train_lmdb, train_overrides  # noqa: F401 (fixture)

pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra `deepspeed` (pip install .[deepspeed])")
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STEPS = 6


def train(dataset: Path, out: Path, trainer: list[str], max_steps: int = STEPS, **kw) -> dict:
    """``python train.py`` with 2 CPU processes into ``out``.

    Returns ``{"loss": {step: global-batch train loss}, "grad_norm": {step: norm}, "rows": [steps logged],
    "stdout": ...}``; a resumed run appends to the same metrics.csv.
    """
    # the whole training split in every global batch: the loss of one fixed batch, so a fall means learning
    args = train_overrides(dataset, 10**9, trainer__max_steps=max_steps, trainer__max_epochs=1000,
                           trainer__log_every_n_steps=1, trainer__check_val_every_n_epoch=1000,
                           test_after_training=False, callbacks__last_checkpoint__every_n_train_steps=2,
                           model__scheduler__warmup_steps=2, **kw)
    args += trainer + [f"+model.scheduler.total_steps={STEPS}", f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=out.parent, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-4000:]
    with open(out / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    # CSV rows are logged after the optimizer step: Lightning's "step" column is the global step minus one.
    return {"loss": {int(r["step"]) + 1: float(r["train/loss"]) for r in rows},
            "grad_norm": {int(r["step"]) + 1: float(r["train/grad_norm"]) for r in rows if r.get("train/grad_norm")},
            "rows": [int(r["step"]) + 1 for r in rows], "stdout": res.stdout, "out": out}


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def zero(stage: int) -> list[str]:
    return ["trainer=deepspeed_cpu", f"trainer.strategy.stage={stage}"]


@pytest.fixture(scope="module")
def ddp_run(train_lmdb, tmp_path_factory):
    return train(train_lmdb, tmp_path_factory.mktemp("ds") / "ddp", DDP)


_ZERO_RUNS: dict[int, tuple[Path, dict]] = {}


@pytest.fixture(scope="module")
def zero_run(train_lmdb, tmp_path_factory):
    """``zero_run(stage) -> (run folder, train() result)``: one full ZeRO run per stage, shared by the tests."""
    def get(stage: int):
        if stage not in _ZERO_RUNS:
            out = tmp_path_factory.mktemp(f"zero{stage}") / "run"
            _ZERO_RUNS[stage] = out, train(train_lmdb, out, zero(stage))
        return _ZERO_RUNS[stage]
    return get


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_loss_curve_and_grad_norm_match_ddp(ddp_run, zero_run, stage):
    out, run = zero_run(stage)
    steps = list(range(1, STEPS + 1))
    assert run["rows"] == ddp_run["rows"] == steps
    ref = np.array([ddp_run["loss"][s] for s in steps])
    assert ref[-1] < ref[0], "the reference run did not learn; the comparison would be empty"
    np.testing.assert_allclose([run["loss"][s] for s in steps], ref, rtol=2e-4, atol=1e-9)
    # train/grad_norm: DeepSpeed's norm of the reduced (sharded) gradient, before clipping, equals DDP's
    assert sorted(run["grad_norm"]) == sorted(ddp_run["grad_norm"]) == steps
    np.testing.assert_allclose([run["grad_norm"][s] for s in steps], [ddp_run["grad_norm"][s] for s in steps],
                               rtol=1e-3)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir(), "ZeRO checkpoints are folders (one optimizer shard per rank)"
    assert len(list((ckpt / "checkpoint").glob("*optim_states.pt"))) == 2


def test_zero2_checkpoint_resumes_and_converts_for_load_model(train_lmdb, zero_run, tmp_path):
    from deeph_lightning import CheckpointError, load_model
    from deeph_lightning.models.checkpoint import checkpoint_meta
    from deeph_lightning.strategies import zero_to_plain_checkpoint
    from deeph_lightning.resume import resolve_checkpoint

    full_dir, full = zero_run(2)
    first = train(train_lmdb, tmp_path / "resumed", zero(2), max_steps=4)
    assert first["rows"] == [1, 2, 3, 4]
    path, meta = resolve_checkpoint("auto", tmp_path / "resumed")  # the DeepSpeed folder and its metadata
    assert path == str(tmp_path / "resumed" / "checkpoints" / "last.ckpt") and meta["global_step"] == 4
    rest = train(train_lmdb, tmp_path / "resumed", zero(2), ckpt_path="auto")
    assert f"resuming from {path}" in rest["stdout"]
    # metrics.csv continues: the first run's rows, then the resumed steps
    assert rest["rows"] == [1, 2, 3, 4, 5, 6], "the resumed run did not continue at step 5"
    for s in (5, 6):  # optimizer shards, LR schedule, EMA and data position were restored
        assert rest["loss"][s] == pytest.approx(full["loss"][s], rel=2e-4), s

    ds_dir = full_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="zero_to_plain_checkpoint"):
        load_model(ds_dir)
    plain = zero_to_plain_checkpoint(ds_dir, tmp_path / "plain.ckpt")
    loaded = load_model(plain)
    assert loaded.meta == checkpoint_meta(ds_dir) and loaded.meta["global_step"] == STEPS
    # The converted weights (from the fp32 optimizer partitions of both ranks) are exactly the (EMA) weights
    # of the live module that DeepSpeed saved at step 6.
    saved = torch.load(ds_dir / "checkpoint" / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    prefix = "ema.module." if loaded.meta["has_ema"] else "net."
    expected = {k[len(prefix):]: v for k, v in saved["module"].items() if k.startswith(prefix)}
    got = loaded.model.state_dict()
    assert set(got) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v.to(got[k].dtype), rtol=0, atol=0, msg=k)

    with pytest.raises(FileNotFoundError, match="not a DeepSpeed checkpoint folder"):
        zero_to_plain_checkpoint(plain, tmp_path / "again.ckpt")
    assert not (tmp_path / "again.ckpt").exists()


def test_checkpoint_kind_must_match_the_strategy(zero_run, ddp_run):
    from pytorch_lightning.strategies import DDPStrategy

    from deeph_lightning.strategies import CPUDeepSpeedStrategy
    from deeph_lightning.resume import strategy_mismatch

    ds_dir = zero_run(2)[0] / "checkpoints" / "last.ckpt"
    plain = ddp_run["out"] / "checkpoints" / "last.ckpt"
    assert "DeepSpeed checkpoint folder" in strategy_mismatch(str(ds_dir), DDPStrategy())
    assert "plain checkpoint file" in strategy_mismatch(str(plain), CPUDeepSpeedStrategy(stage=2))
    assert strategy_mismatch(str(ds_dir), CPUDeepSpeedStrategy(stage=2)) is None
    assert strategy_mismatch(str(plain), DDPStrategy()) is None


def test_auto_takes_the_newest_deepspeed_folder(zero_run, tmp_path):
    """Under DeepSpeed, last.ckpt and Lightning's pre-emption hpc_ckpt_<n>.ckpt are folders, rewritten in place."""
    import shutil
    import time

    from deeph_lightning.resume import resolve_checkpoint

    out = tmp_path / "run"
    shutil.copytree(zero_run(2)[0] / "checkpoints", out / "checkpoints")
    last, hpc = out / "checkpoints" / "last.ckpt", out / "hpc_ckpt_1.ckpt"
    shutil.copytree(last, hpc)

    def written(folder, seconds_ago):
        for f in folder.rglob("*"):
            os.utime(f, (time.time() - seconds_ago,) * 2)

    written(last, 60)
    written(hpc, 10)
    path, meta = resolve_checkpoint("auto", out)
    assert path == str(hpc) and meta["global_step"] == STEPS
    (last / "latest").touch()  # DeepSpeed rewrote last.ckpt (its tag file) after the pre-emption checkpoint
    assert resolve_checkpoint("auto", out)[0] == str(last)
