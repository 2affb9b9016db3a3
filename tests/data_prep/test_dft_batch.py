"""``deeph-prep dft`` as a batch job: resumable after a kill, bad structures fail cleanly, SLURM split."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from data_prep.cli import main
from data_prep.deeph_format import read_deeph
from data_prep.dft import BadStructureError, DFTSettings, check_structure
from data_prep.dft.batch import array_share

CHEAP = ["--kmesh", "1", "1", "1", "--dense-kmesh", "1", "1", "1", "--radius", "2.0", "--ke-cutoff", "30"]


def _h2(shift: float) -> Atoms:
    return Atoms("H2", positions=[[0, 0, 0], [0.74 + shift, 0.1, 0.05]],
                 cell=[[4.0, 0.1, 0], [0, 4.2, 0], [0.1, 0, 4.4]], pbc=True)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_killed_run_resumes_and_finishes(tmp_path):
    files = []
    for n in range(2):
        files.append(tmp_path / f"h2_{n}.extxyz")
        write(files[-1], _h2(0.02 * n))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_prep.cli", "dft", *map(str, files), "--out", str(out), *CHEAP]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while not (out / "h2_0" / "info.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its DFT child, mid-way through the second structure
    proc.wait()
    done_before = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.is_dir())
    assert done_before == ["h2_0"]
    first = read_deeph(out / "h2_0")

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 already done" in rerun.stdout
    for n in range(2):
        st = read_deeph(out / f"h2_{n}")
        assert st.info["structure_id"] == f"h2_{n}" and st.fermi_level is not None
    again = read_deeph(out / "h2_0")  # skipped, not recomputed
    assert all(np.array_equal(again.hamiltonians[k], v) for k, v in first.hamiltonians.items())
    assert _leftovers(out) == [] and not (out / "failures.jsonl").exists()


@pytest.mark.parametrize(
    "atoms, message",
    [
        (Atoms(cell=np.eye(3) * 4, pbc=True), "no atoms"),
        (Atoms("H2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=np.eye(3) * 4, pbc=True), "overlapping atoms"),
        (Atoms("La", cell=np.eye(3) * 4, pbc=True), "unsupported element"),
        (Atoms("H", cell=[[4, 0, 0], [8, 0, 0], [0, 0, 4]], pbc=True), "degenerate cell"),
        (Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], cell=np.eye(3) * 4, pbc=[1, 1, 0]), "pbc"),
    ],
)
def test_bad_structures_are_named_clearly(atoms, message):
    with pytest.raises(BadStructureError, match=message):
        check_structure(atoms, DFTSettings(), "bad.xyz")


def test_bad_structures_fail_in_batch_with_no_folder_left(tmp_path, capsys):
    write(tmp_path / "overlap.extxyz", Atoms("H2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=np.eye(3) * 4, pbc=True))
    write(tmp_path / "lanthanum.extxyz", Atoms("La", cell=np.eye(3) * 4, pbc=True))
    out = tmp_path / "out"
    rc = main(["dft", str(tmp_path / "overlap.extxyz"), str(tmp_path / "lanthanum.extxyz"), "--out", str(out), *CHEAP])
    assert rc == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert {f["id"] for f in failures} == {"overlap", "lanthanum"}
    assert any("overlapping atoms" in f["error"] for f in failures)
    assert any("La" in f["error"] and "unsupported" in f["error"] for f in failures)
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "settings.json"]


def test_resuming_with_other_settings_is_refused(tmp_path):
    write(tmp_path / "bad.extxyz", Atoms("La", cell=np.eye(3) * 4, pbc=True))
    out = tmp_path / "out"
    main(["dft", str(tmp_path / "bad.extxyz"), "--out", str(out), *CHEAP])
    with pytest.raises(ValueError, match="other DFT settings"):
        from data_prep.dft.batch import run_batch

        run_batch([], out, DFTSettings(radius=3.0))


def test_array_tasks_split_the_structures_without_overlap():
    items = list(range(10))
    shares = [array_share(items, k, 3) for k in range(3)]
    assert sorted(sum(shares, [])) == items and all(len(s) in (3, 4) for s in shares)
    with pytest.raises(ValueError):
        array_share(items, 3, 3)


@pytest.mark.slow
def test_check_command_reports_band_errors_of_a_folder(tmp_path, capsys):
    write(tmp_path / "h2.extxyz", _h2(0.0))
    out = tmp_path / "out"
    assert main(["dft", str(tmp_path / "h2.extxyz"), "--out", str(out), "--kmesh", "2", "2", "2", "--radius", "4.0",
                 "--ke-cutoff", "30"]) == 0
    report = tmp_path / "check.json"
    # 4 Å blocks of an H2 box cannot meet a zero tolerance: exit code 1, the numbers still reported
    assert main(["check", str(out / "h2"), "--n-kpts", "2", "--tolerance", "0", "--json", str(report)]) == 1
    result = json.loads(report.read_text())[str(out / "h2")]
    assert result["n_values"] >= 2 and 0 < result["max_mev"] < 1000 and result["radius"] == pytest.approx(4.0)
    assert "worst max error" in capsys.readouterr().out


def test_resuming_with_other_thread_count_is_allowed(tmp_path):
    from data_prep.dft.batch import run_batch

    run_batch([], tmp_path, DFTSettings(threads=1))
    run_batch([], tmp_path, DFTSettings(threads=8))  # execution detail, same recipe
    assert "threads" not in json.loads((tmp_path / "settings.json").read_text())


def test_compute_seconds_counts_cpu_not_wall_time():
    from data_prep.dft.batch import compute_seconds

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
    time.sleep(1.2)
    slept, spun = compute_seconds(sleeper.pid), compute_seconds(spinner.pid)
    sleeper.wait(), spinner.wait()
    assert slept < 0.3 and spun > 0.5, (slept, spun)
    assert compute_seconds(sleeper.pid) is None  # gone: the caller falls back to wall time


@pytest.mark.slow
def test_timeout_charges_compute_so_a_paused_run_does_not_time_out(tmp_path):
    """--timeout counts the structure's CPU time: a run paused (SIGSTOP, as scripts/universal_dft.sh pause does)
    for longer than the timeout finishes; a structure that needs more compute than the timeout is recorded."""
    xyz = tmp_path / "h2.extxyz"
    write(xyz, _h2(0.0))
    slower = ["--kmesh", "2", "2", "2", "--dense-kmesh", "2", "2", "2", "--radius", "2.0", "--ke-cutoff", "60"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "paused"
    cmd = [sys.executable, "-m", "data_prep.cli", "dft", str(xyz), "--out", str(out), *slower, "--timeout", "8"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGSTOP)  # the run, its forkserver and the DFT worker
    time.sleep(9)
    os.killpg(proc.pid, signal.SIGCONT)
    log, _ = proc.communicate(timeout=300)
    assert time.time() - t0 > 9 + 1.5  # longer than the timeout in wall time
    assert proc.returncode == 0 and "done 1 failed 0" in log, log
    assert read_deeph(out / "h2").fermi_level is not None

    short = tmp_path / "short"
    rerun = subprocess.run([*cmd[:5], "--out", str(short), *slower, "--timeout", "0.3"], env=env, capture_output=True,
                           text=True, timeout=300)
    failure = json.loads((short / "failures.jsonl").read_text().splitlines()[0])
    assert failure["id"] == "h2" and "timed out after 0.3 s of compute" in failure["error"], rerun.stdout
    assert _leftovers(short) == [] and not (short / "h2").exists()


@pytest.mark.slow
def test_a_structure_resumes_from_the_scf_checkpoint_a_killed_run_left(tmp_path):
    from data_prep.dft.batch import scf_checkpoint
    from data_prep.dft.runner import run_scf

    out = tmp_path / "out"
    out.mkdir()
    write(tmp_path / "h2_0.extxyz", _h2(0.0))
    settings = DFTSettings(kmesh=(1, 1, 1), dense_kmesh=(1, 1, 1), radius=2.0, ke_cutoff=30)
    run_scf(_h2(0.0), settings, "h2_0", scf_checkpoint(out, "h2_0"))  # what a run killed after its SCF leaves
    assert main(["dft", str(tmp_path / "h2_0.extxyz"), "--out", str(out), *CHEAP]) == 0
    assert read_deeph(out / "h2_0").info["scf_initial_guess"] == "checkpoint"
    assert _leftovers(out) == []  # the checkpoint is gone once the structure is done
