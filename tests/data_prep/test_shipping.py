"""Compact shipping of DFT data: float32 H within 0.1 meV of the bands, S recomputed exactly, a shipped chunk
extracts back to folders that pack like the originals."""

import json

import numpy as np
import pytest

from data_prep.deeph_format import read_deeph
from data_prep.embedded import quickstart_path
from data_prep.embedded.shipping import FLOAT32_BAND_TOLERANCE_MEV, compact, restore
from data_prep.kspace import band_energies


@pytest.fixture(scope="module")
def original():
    folders = sorted(p for p in quickstart_path().iterdir() if p.is_dir())
    return folders[0]


def test_compact_then_restore_gives_the_dft_folder(original, tmp_path):
    measured = compact(original, tmp_path / "shipped")
    assert not (tmp_path / "shipped" / "overlaps.h5").exists()
    info = json.loads((tmp_path / "shipped" / "info.json").read_text())
    assert info["shipping"]["hamiltonian_dtype"] == "float32"
    assert 0 <= measured["float32_band_change_meV"] <= FLOAT32_BAND_TOLERANCE_MEV
    shipped = read_deeph(tmp_path / "shipped", overlap=False)
    assert all(v.dtype == np.float32 for v in shipped.hamiltonians.values())

    restore(tmp_path / "shipped", tmp_path / "restored")
    a, b = read_deeph(original), read_deeph(tmp_path / "restored")
    assert set(a.overlaps) == set(b.overlaps) == set(b.hamiltonians)
    assert max(np.abs(a.overlaps[k] - b.overlaps[k]).max() for k in a.overlaps) < 1e-10
    h_dev = max(np.abs(a.hamiltonians[k] - b.hamiltonians[k]).max() for k in a.hamiltonians)
    assert 0 < h_dev < 1e-5  # float32 rounding, nothing more
    k = np.random.default_rng(1).random((3, 3))
    ea = band_energies(a.hamiltonians, a.overlaps, a.n_orbitals(), k)
    eb = band_energies(b.hamiltonians, b.overlaps, b.n_orbitals(), k)
    assert np.abs(ea - eb).max() * 1000 <= FLOAT32_BAND_TOLERANCE_MEV
    np.testing.assert_allclose(a.cell, b.cell)
    assert a.fermi_level == b.fermi_level and np.array_equal(a.numbers, b.numbers)


def test_shipped_folder_without_basis_is_refused(original, tmp_path):
    compact(original, tmp_path / "shipped")
    info_path = tmp_path / "shipped" / "info.json"
    info = json.loads(info_path.read_text())
    del info["dft"]["basis"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="no DFT basis"):
        restore(tmp_path / "shipped", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
