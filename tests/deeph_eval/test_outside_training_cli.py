"""The shipped universal-mini model names, on one line of the command's output, the bonds of a structure that
its training set never had (a held-out composition of its own dataset)."""

import subprocess
import sys

import pytest

from data_prep.embedded import dataset_path


@pytest.mark.slow
def test_predict_warns_in_one_line_about_a_pair_training_never_bonded(tmp_path):
    folder = dataset_path("universal-mini") / "AlAs_zincblende_s0_00090"  # held out: no Al-As bond in training
    run = subprocess.run([sys.executable, "-m", "deeph_eval.cli", "predict", "--ckpt", "universal-mini",
                          "--structure", str(folder), "--out", str(tmp_path / "pred")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "outside the model's training set" in line]
    assert len(lines) == 1
    assert lines[0].startswith("deeph-eval predict: warning: ")
    assert "Al-As at 2.30 Å (no Al-As nearest-neighbour bond in training)" in lines[0]
    assert "predict.py" not in run.stderr  # not the default format with the source location
