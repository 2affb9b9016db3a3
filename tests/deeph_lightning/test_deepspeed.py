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


def budget_for(dataset: Path, structures: int) -> int:
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(dataset)
    sizes = (np.asarray(ds.metadata["n_atoms"]) + np.asarray(ds.metadata["n_edges"])) * ds.basis.n_union**2
    return int(np.median(sizes) * structures)


def train(dataset: Path, out: Path, trainer: list[str], max_steps: int = STEPS, **kw) -> dict[int, float]:
    """``python train.py`` with 2 CPU processes into ``out``; returns {step: global-batch train loss}."""
    args = train_overrides(dataset, budget_for(dataset, 2), trainer__max_steps=max_steps, trainer__max_epochs=1000,
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
    return {int(r["step"]) + 1: float(r["train/loss"]) for r in rows}


DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def zero(stage: int) -> list[str]:
    return ["trainer=deepspeed_cpu", f"trainer.strategy.stage={stage}"]


@pytest.fixture(scope="module")
def ddp_losses(train_lmdb, tmp_path_factory):
    return train(train_lmdb, tmp_path_factory.mktemp("ds") / "ddp", DDP)


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_loss_curve_matches_ddp(train_lmdb, ddp_losses, tmp_path, stage):
    losses = train(train_lmdb, tmp_path / f"zero{stage}", zero(stage))
    assert sorted(losses) == sorted(ddp_losses) == list(range(1, STEPS + 1))
    ref = np.array([ddp_losses[s] for s in sorted(ddp_losses)])
    got = np.array([losses[s] for s in sorted(losses)])
    assert ref[-1] < ref[0], "the reference run did not learn; the comparison would be empty"
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-9)
    ckpt = tmp_path / f"zero{stage}" / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir(), "ZeRO checkpoints are folders (one optimizer shard per rank)"
    assert len(list((ckpt / "checkpoint").glob("*optim_states.pt"))) == 2


def test_zero2_checkpoint_resumes_and_converts_for_load_model(train_lmdb, tmp_path):
    from deeph_lightning import load_model
    from deeph_lightning.strategies import zero_to_plain_checkpoint

    full = train(train_lmdb, tmp_path / "full", zero(2))
    first = train(train_lmdb, tmp_path / "resumed", zero(2), max_steps=4)
    assert sorted(first) == [1, 2, 3, 4]
    rest = train(train_lmdb, tmp_path / "resumed", zero(2), ckpt_path="auto")
    resumed_steps = sorted(s for s in rest if s > 4)
    assert resumed_steps == [5, 6]
    for s in resumed_steps:  # optimizer shards, LR schedule and EMA were restored
        assert rest[s] == pytest.approx(full[s], rel=2e-4), s

    ds_dir = tmp_path / "full" / "checkpoints" / "last.ckpt"
    plain = zero_to_plain_checkpoint(ds_dir, tmp_path / "plain.ckpt")
    loaded = load_model(plain)
    # The converted weights are exactly the (EMA) weights DeepSpeed saved at step 6.
    saved = torch.load(ds_dir / "checkpoint" / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    prefix = "ema.module." if loaded.meta["has_ema"] else "net."
    expected = {k[len(prefix):]: v for k, v in saved["module"].items() if k.startswith(prefix)}
    got = loaded.model.state_dict()
    assert set(got) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v.to(got[k].dtype), rtol=0, atol=0, msg=k)
    assert loaded.meta["global_step"] == STEPS

    with pytest.raises(FileNotFoundError, match="not a DeepSpeed checkpoint folder"):
        zero_to_plain_checkpoint(plain, tmp_path / "again.ckpt")
    assert not (tmp_path / "again.ckpt").exists()
