"""Export to sisl: sisl's H(k) and eigenvalues equal ours (s, p, d, f shells), through the .TSHS file too."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from data_prep.basis import openmx_to_v1_order
from data_prep.deeph_format import read_deeph, write_deeph
from data_prep.kspace import band_energies, bloch_sum
from deeph_eval.cli import main
from deeph_eval.sisl_export import to_sisl

sisl = pytest.importorskip("sisl")  # a declared dependency; skipped only where it is missing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_prep"))
from test_deeph_v1 import df_structure  # noqa: E402

KPTS = np.array([[0, 0, 0], [0.1, 0.2, 0.3], [0.5, 0, 0.5], [0.37, -0.21, 0.05]])


@pytest.fixture(scope="module")
def tio():
    """Ti, O, Ti, O (s p d / s p f) real PySCF integrals: kinetic 'H' and overlap S."""
    return df_structure(bulk("TiO", "rocksalt", a=4.2).repeat((2, 1, 1)))[0]


def test_sisl_hamiltonian_is_ours(tio):
    h = to_sisl(tio)
    assert not h.orthogonal and h.no == tio.n_orbitals().sum() == 40
    atoms = [h.geometry.atoms[a] for a in range(h.geometry.na)]
    assert [a.Z for a in atoms] == tio.numbers.tolist()
    assert [[o.l for o in a.orbitals] for a in atoms][:2] == [[0, 1, 1, 1] + [2] * 5, [0, 1, 1, 1] + [3] * 7]
    assert [o.m for o in atoms[1].orbitals] == [0, -1, 0, 1, -3, -2, -1, 0, 1, 2, 3]
    np.testing.assert_array_equal(h.geometry.xyz, tio.positions)
    n_orb = tio.n_orbitals()
    first = np.concatenate([[0], np.cumsum(n_orb)])
    to_sisl_order = np.concatenate([first[a] + openmx_to_v1_order(ls) for a, ls in enumerate(tio.orbital_types)])
    ours = band_energies(tio.hamiltonians, tio.overlaps, n_orb, KPTS)
    for k, e in zip(KPTS, ours):  # same Bloch sum in sisl's default (lattice) gauge, element by element
        hk = bloch_sum(tio.hamiltonians, n_orb, k)[0][np.ix_(to_sisl_order, to_sisl_order)]
        sk = bloch_sum(tio.overlaps, n_orb, k)[0][np.ix_(to_sisl_order, to_sisl_order)]
        np.testing.assert_allclose(h.Hk(k=k).toarray(), hk, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h.Sk(k=k).toarray(), sk, rtol=0, atol=1e-14)
        np.testing.assert_allclose(h.eigh(k=k), e, rtol=0, atol=1e-8)


@pytest.mark.parametrize("layout", ["legacy", "v1"])
def test_export_cli_writes_a_tshs_sisl_reads_back(tio, tmp_path, capsys, layout):
    write_deeph(tio, tmp_path / "tio", layout=layout)
    out = tmp_path / "tio.TSHS"
    assert main(["export-sisl", "--hamiltonian", str(tmp_path / "tio"), "--out", str(out)]) == 0
    assert "40 orbitals" in capsys.readouterr().out
    h = sisl.get_sile(str(out)).read_hamiltonian()
    assert not h.orthogonal and h.no == 40
    np.testing.assert_allclose(h.geometry.xyz, read_deeph(tmp_path / "tio").positions, atol=1e-10)  # v1: regrouped
    ours = band_energies(tio.hamiltonians, tio.overlaps, tio.n_orbitals(), KPTS)
    for k, e in zip(KPTS, ours):
        np.testing.assert_allclose(np.sort(h.eigh(k=k)), e, rtol=0, atol=1e-8)
    # refused without --overwrite; a file type sisl cannot write leaves nothing behind
    assert main(["export-sisl", "--hamiltonian", str(tmp_path / "tio"), "--out", str(out)]) == 2
    assert main(["export-sisl", "--hamiltonian", str(tmp_path / "tio"), "--out", str(tmp_path / "x.unknown")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "already exists" in err[0] and "x.unknown" in err[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tio", "tio.TSHS"]
