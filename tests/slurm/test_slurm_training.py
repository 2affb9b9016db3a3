"""Real SLURM jobs on the local dev cluster: the sbatch template with 2 srun tasks, a Hydra sweep through
the submitit SLURM launcher, and a pre-empted (SIGUSR1) job that requeues itself and resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from slurm_helpers import REPO, sacct_states, task_pid, wait_final
from lightning_helpers import TINY_NET, train_lmdb  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
TEMPLATE = REPO / "slurm" / "train.sbatch"


def budget_for(dataset: Path, structures: int) -> int:
    """A global budget (padded matrix elements) holding about ``structures`` median structures."""
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(dataset)
    sizes = (np.asarray(ds.metadata["n_atoms"]) + np.asarray(ds.metadata["n_edges"])) * ds.basis.n_union**2
    return int(np.median(sizes) * structures)


def training_args(dataset: Path, root: Path, max_steps: int, ckpt_every: int) -> list[str]:
    return [
        "+experiment=quickstart", f"data.path={dataset}", "data.pack_from=null",
        f"data.global_budget={budget_for(dataset, 2)}", f"paths.root_dir={root}", "logger=csv",
        "test_after_training=false", f"trainer.max_steps={max_steps}", "trainer.max_epochs=1000",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=1000",
        f"callbacks.last_checkpoint.every_n_train_steps={ckpt_every}", "callbacks.plain_progress.every_n_steps=1",
        "+callbacks.plain_progress.force=true", *TINY_NET,
    ]


def sbatch(args: list[str], out: Path, tasks: int = 2) -> str:
    env = {**os.environ, "DEEPH_ACCELERATOR": "cpu", "DEEPH_REPO": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = ["sbatch", "--parsable", "--gpus-per-node=0", f"--ntasks-per-node={tasks}", "--cpus-per-task=1",
           "--mem=4G", "--time=10", f"--output={out}", str(TEMPLATE), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return res.stdout.strip().split(";")[0]


def release_requeued(job: str, timeout: float = 60) -> None:
    """Start a requeued job now. slurmctld sets a requeued job's BeginTime (cred_expire later) only once the
    old allocation has finished completing; an earlier ``StartTime=now`` is overwritten, so wait for PENDING."""
    end = time.monotonic() + timeout
    while True:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state != "COMPLETING" and state:
            break
        assert time.monotonic() < end, f"requeued job {job} still {state or 'not in squeue'} after {timeout:.0f} s"
        time.sleep(0.5)
    if state == "PENDING":
        subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True)


def read_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sbatch_template_trains_with_two_srun_tasks(slurm_cluster, train_lmdb, tmp_path):
    log = tmp_path / "job.out"
    job = sbatch(training_args(train_lmdb, tmp_path, max_steps=6, ckpt_every=3), log)
    state = wait_final(job, timeout=120)
    text = log.read_text()
    assert state == "COMPLETED", text[-3000:]
    assert "MEMBER: 1/2" in text and "MEMBER: 2/2" in text, "training did not run as 2 ranks"
    run_dir = tmp_path / "logs" / "quickstart" / "runs" / f"deeph-train-{job}"
    ckpt = read_ckpt(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 6
    assert ckpt["deeph"]["config"]["trainer"]["devices"] == 2  # from SLURM_NTASKS_PER_NODE


def test_hydra_sweep_through_submitit_slurm_launcher(slurm_cluster, train_lmdb, tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=submitit_slurm",
           f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.mem_gb=4", "hydra.launcher.timeout_min=10",
           *training_args(train_lmdb, tmp_path, max_steps=3, ckpt_every=3), "model.optimizer.lr=0.001,0.004"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lrs = []
    for point in ("0", "1"):
        ckpt = read_ckpt(sweep_dir / point / "checkpoints" / "last.ckpt")
        assert ckpt["global_step"] == 3
        lrs.append(ckpt["deeph"]["config"]["model"]["optimizer"]["lr"])
    assert lrs == [0.001, 0.004]
    job_ids = {p.name.split("_")[0] for p in (sweep_dir / ".submitit").iterdir() if re.match(r"\d+_\d+$", p.name)}
    assert len(job_ids) == 1, "the 2 points should be one SLURM job array"
    array = job_ids.pop()
    end = time.monotonic() + 30  # submitit returns once the results are written, before the tasks exit
    while not set(sacct_states(array)) <= {"COMPLETED", "FAILED", "CANCELLED"} and time.monotonic() < end:
        time.sleep(0.5)
    assert sacct_states(array) == ["COMPLETED", "COMPLETED"]


def test_preempted_job_requeues_and_resumes_from_checkpoint(slurm_cluster, train_lmdb, tmp_path):
    """SIGUSR1 (what --signal=SIGUSR1@90 sends before the time limit), here to rank 1 only, the hardest case:
    both ranks still checkpoint at the same step boundary (SlurmRequeue), rank 0 runs `scontrol requeue`, and
    the job starts again with the same id and run folder and resumes (ckpt_path=auto)."""
    log = tmp_path / "job.out"
    max_steps = 24
    job = sbatch(training_args(train_lmdb, tmp_path, max_steps=max_steps, ckpt_every=2), log)
    run_dir = tmp_path / "logs" / "quickstart" / "runs" / f"deeph-train-{job}"
    last = run_dir / "checkpoints" / "last.ckpt"
    end = time.monotonic() + 90
    while not (last.is_file() and re.search(r"step [4-9]:", log.read_text() if log.exists() else "")):
        assert time.monotonic() < end, "no checkpoint within 90 s"
        states = sacct_states(job)  # empty until slurmdbd has the job
        assert not states or states[-1] in ("PENDING", "RUNNING"), log.read_text()[-3000:]
        time.sleep(0.5)
    os.kill(task_pid(job, procid=1), signal.SIGUSR1)
    end = time.monotonic() + 60
    while sacct_states(job)[:1] != ["REQUEUED"]:
        assert time.monotonic() < end, f"job not requeued: {sacct_states(job)}\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    release_requeued(job)
    state = wait_final(job, timeout=150)
    text = log.read_text()
    assert state == "COMPLETED", text[-3000:]
    assert sacct_states(job) == ["REQUEUED", "COMPLETED"]
    first, second = text.split("restart 1:", 1)
    assert "pre-emption signal: saving" in first and "requeued SLURM job" in first, first[-3000:]
    assert "Handling auto-requeue signal" not in first, "Lightning's in-handler checkpoint ran (can hang under DDP)"
    assert (run_dir / "hpc_ckpt_1.ckpt").is_file() and not list(run_dir.glob("*.partial"))
    steps_before = [int(s) for s in re.findall(r"epoch \d+ step (\d+):", first)]
    steps_after = [int(s) for s in re.findall(r"epoch \d+ step (\d+):", second)]
    resumed = re.search(r"resuming from (\S+)", second)
    assert resumed and steps_after, second[-3000:]
    # ckpt_path=auto takes the newer of last.ckpt and the pre-emption checkpoint: no step it saved is lost
    hpc_step = read_ckpt(run_dir / "hpc_ckpt_1.ckpt")["global_step"]
    if resumed.group(1) == str(run_dir / "hpc_ckpt_1.ckpt"):
        assert steps_after[0] == hpc_step + 1
    else:
        assert resumed.group(1) == str(last) and steps_after[0] >= hpc_step + 1
    assert steps_after and steps_after[0] > 1, "the requeued run started from scratch"
    assert steps_after[0] <= max(steps_before) + 1, "the requeued run skipped steps"
    assert steps_after[-1] == max_steps
    assert read_ckpt(last)["global_step"] == max_steps
