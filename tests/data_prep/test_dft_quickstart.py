"""The shipped quickstart dataset: extracts once, holds real DFT folders, and is reproducible with the
recorded commands (one structure recomputed and compared block by block)."""

import shlex

import numpy as np
import pytest

from data_prep.cli import main
from data_prep.deeph_format import check_hermitian, read_deeph
from data_prep.embedded import ARCHIVE, HERE, commands, quickstart_path


def _fill(argv, **values):
    return [a.format(**values) for a in argv]


def test_archive_is_small_and_readme_records_the_commands():
    assert ARCHIVE.stat().st_size <= 4 * 1024 * 1024
    readme = (HERE / "README.md").read_text()
    cmds = commands()
    for name in ("generate", "dft"):
        line = "deeph-prep " + shlex.join(_fill(cmds[name], structures="STRUCTURES", out="OUT"))
        assert line in readme, f"README.md does not show the recorded {name} command:\n{line}"


def test_quickstart_extracts_once_to_readable_deeph_folders(tmp_path):
    root = quickstart_path(tmp_path)
    assert quickstart_path(tmp_path) == root  # cached: second call does not extract again
    assert not [p for p in root.parent.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    assert 30 <= len(folders) <= 50
    elements, prototypes = set(), set()
    for f in folders:
        st = read_deeph(f)
        check_hermitian(st.hamiltonians, str(f), tol=1e-8)
        assert st.fermi_level is not None and st.info["dft"]["basis"] == "SZV-MOLOPT-SR-GTH"
        elements |= set(st.numbers.tolist())
        prototypes.add(f.name.split("_")[1])
    # focused: group-IV C/Si/SiC in the tetrahedral bulk prototypes (a small model can learn it in minutes)
    assert elements == {6, 14} and prototypes == {"diamond", "zincblende", "wurtzite"}


@pytest.mark.slow
def test_one_structure_regenerates_with_the_recorded_commands(tmp_path):
    cmds = commands()
    sid = cmds["regression_structure"]
    structures, out = tmp_path / "structures", tmp_path / "dft"
    assert main(_fill(cmds["generate"], structures=structures, out=structures)) == 0
    assert main(_fill(cmds["dft"], structures=structures / f"{sid}.extxyz", out=out)) == 0
    new, old = read_deeph(out / sid), read_deeph(quickstart_path(tmp_path / "cache") / sid)
    assert np.array_equal(new.positions, old.positions) and new.hamiltonians.keys() == old.hamiltonians.keys()
    # The shipped blocks were made before the dense mesh and the SCF used time reversal (one of each k, -k):
    # their imaginary parts (max_imag_h_ev, grid integration noise) bound how far H and E_F can move.
    assert new.info["max_imag_h_ev"] < 1e-9
    assert max(np.abs(new.hamiltonians[k] - v).max() for k, v in old.hamiltonians.items()) < old.info["max_imag_h_ev"]
    assert max(np.abs(new.overlaps[k] - v).max() for k, v in old.overlaps.items()) < 1e-10
    assert new.fermi_level == pytest.approx(old.fermi_level, abs=old.info["max_imag_h_ev"])
