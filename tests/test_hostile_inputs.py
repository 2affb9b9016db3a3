"""Hostile and careless input, replayed on real data (the shipped quickstart DeepH folders, a real packed LMDB,
a real tiny checkpoint): every case ends in exit code 2 with one line naming the culprit, and nothing we did not
write is deleted, nothing is half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_prep import cli as prep_cli
from data_prep.embedded import quickstart_path
from deeph_eval import cli as eval_cli

REPO = Path(__file__).resolve().parents[1]
NAMES = ("Si2_diamond_s11_00013", "C2_diamond_s11_00000", "CSi_zincblende_s11_00004", "CSi_zincblende_s11_00006")
CUTOFF = "7.0"  # the quickstart folders hold blocks to 7 Å (info.json radius)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: 'nothing changed' is equality of two snapshots."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str, *names: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]  # tqdm bars are not messages
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def prep(capsys, *args) -> tuple[int, str, str]:
    code = prep_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def evaluate(capsys, *args) -> tuple[int, str, str]:
    code = eval_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A user's folder of four real DFT results (copied from the quickstart data)."""
    root = tmp_path_factory.mktemp("hostile") / "mydft"
    root.mkdir()
    for name in NAMES:
        shutil.copytree(quickstart_path() / name, root / name)
    return root


@pytest.fixture(scope="module")
def packed(sources, tmp_path_factory) -> Path:
    from data_prep.lmdb_dataset import pack_folders

    return pack_folders([sources], tmp_path_factory.mktemp("packed") / "ds", cutoff=float(CUTOFF), workers=2,
                        split_fractions=(0.5, 0.25, 0.25), progress=False)


@pytest.fixture
def folder(sources, tmp_path) -> Path:
    """A private copy of one DeepH folder to break."""
    return Path(shutil.copytree(sources / NAMES[2], tmp_path / NAMES[2]))


# ---------------------------------------------------------------------------------------------------
# data loss: --overwrite deletes only what we wrote


def test_pack_out_is_an_input_or_its_parent(sources, capsys):
    before = snapshot(sources.parent)
    for out in (sources, sources.parent, sources / NAMES[0]):
        code, _, err = prep(capsys, "pack", sources, "--out", out, "--overwrite", "--cutoff", CUTOFF, "--quiet")
        assert code == 2
        assert "choose another --out" in one_error_line(err, str(out))
    code, _, err = prep(capsys, "pack", sources / NAMES[0], "--out", sources, "--overwrite", "--quiet")
    assert code == 2 and "contains the input" in one_error_line(err, str(sources))
    assert snapshot(sources.parent) == before


def test_overwrite_replaces_only_our_own_output(sources, tmp_path, capsys):
    out = tmp_path / "ds"
    assert prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet")[0] == 0
    manifest = json.loads((out / ".deeph-output.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir() if p.name != ".deeph-output.json")
    code, _, err = prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet")
    assert code == 2 and "--overwrite" in one_error_line(err, str(out))
    assert prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet", "--overwrite")[0] == 0

    (out / "notes.txt").write_text("my notes")  # a user's file inside our output
    before = snapshot(out)
    code, _, err = prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet", "--overwrite")
    assert code == 2 and "notes.txt" in one_error_line(err, str(out))
    assert snapshot(out) == before

    theirs = tmp_path / "theirs"  # a folder we never wrote
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("x")
    code, _, err = prep(capsys, "pack", sources, "--out", theirs, "--cutoff", CUTOFF, "--quiet", "--overwrite")
    assert code == 2 and "not written by deeph-lightning" in one_error_line(err, str(theirs))
    assert (theirs / "thesis.tex").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "theirs"]  # no temporary folder left


def test_unwritable_out_fails_before_any_work(sources, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = prep(capsys, "pack", sources, "--out", blocker / "ds", "--cutoff", CUTOFF)
    assert code == 2 and "not a directory" in one_error_line(err, str(blocker))
    assert "structure/s" not in err  # failed before the progress bar started
