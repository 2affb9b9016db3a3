"""A real one-node SLURM cluster (slurm/dev-cluster.sh) for the whole test session, stopped at the end.

Skipped, with the reason, only where the machine cannot run one: not root and SLURM not installed, or no
apt-get to install it. The cluster gets its own state folder and ports, so a developer's dev cluster
(default /tmp/deeph-slurm, port 16817) is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_CLUSTER = REPO / "slurm" / "dev-cluster.sh"


def _cannot_run_reason() -> str | None:
    have_slurm = all(shutil.which(x) for x in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"))
    if have_slurm:
        return None if os.geteuid() == 0 else "the dev cluster runs its daemons as root; tests are not root"
    if os.geteuid() != 0:
        return "SLURM is not installed and installing it (apt-get) needs root"
    if not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the cluster; yields its state dir. Client commands find it through SLURM_CONF (set here)."""
    reason = _cannot_run_reason()
    if reason:
        pytest.skip(f"no local SLURM cluster: {reason}")
    state = Path(tempfile.mkdtemp(prefix="deeph-slurm-test-", dir="/tmp"))
    state.chmod(0o755)
    env = {**os.environ, "DEEPH_SLURM_DIR": str(state), "DEEPH_SLURM_PORT": "26817"}
    old_conf = os.environ.get("SLURM_CONF")
    started = subprocess.run([str(DEV_CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=900)
    try:
        if started.returncode != 0:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((state / "log").glob("*")))
            pytest.fail(f"dev-cluster.sh start failed:\n{started.stderr}\n{logs}")
        os.environ["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
        yield state
    finally:
        subprocess.run([str(DEV_CLUSTER), "stop"], env=env, capture_output=True, timeout=120)
        left = our_processes(state)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        if not os.environ.get("DEEPH_SLURM_KEEP"):
            shutil.rmtree(state, ignore_errors=True)
    assert not left, f"dev-cluster.sh stop left processes of the test cluster running: {left}"


def our_processes(state: Path) -> list[str]:
    """Processes still carrying the test cluster's SLURM_CONF (daemons, slurmstepd, job tasks)."""
    mark = f"SLURM_CONF={state / 'etc' / 'slurm.conf'}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # zombies are gone
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"{proc.name} {cmd[:80]}")
        except OSError:
            continue
    return found
