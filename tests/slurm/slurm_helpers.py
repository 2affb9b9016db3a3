"""Helpers of the SLURM tests (conftest modules are not importable by name across test folders)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def sacct_states(job_id: str) -> list[str]:
    """States of every allocation of the job (requeues included, oldest first); array tasks for arrays."""
    out = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-j", job_id, "-o", "JobID,State"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|")[1].split()[0] for line in out.splitlines() if line.strip()]


def task_pid(job_id: str, procid: int) -> int | None:
    """PID of the job's ``train.py`` task with SLURM_PROCID ``procid`` (the dev cluster runs on this machine)."""
    for proc in Path("/proc").iterdir():
        try:
            if b"train.py" not in (proc / "cmdline").read_bytes():
                continue
            env = dict(kv.split(b"=", 1) for kv in (proc / "environ").read_bytes().split(b"\0") if b"=" in kv)
        except (OSError, ValueError):
            continue
        if env.get(b"SLURM_JOB_ID") == job_id.encode() and env.get(b"SLURM_PROCID") == str(procid).encode():
            return int(proc.name)
    return None


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def wait_final(job_id: str, timeout: float, poll: float = 1.0) -> str:
    """Wait until the job's latest allocation is in a final state; returns it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = sacct_states(job_id)
        if states and states[-1] in FINAL:
            return states[-1]
        time.sleep(poll)
    info = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    nodes = subprocess.run(["sinfo", "-N", "-o", "%N %T %E"], capture_output=True, text=True).stdout
    subprocess.run(["scancel", job_id])
    raise AssertionError(f"job {job_id} not finished after {timeout:.0f} s (states {sacct_states(job_id)})\n{info}\n{nodes}")
