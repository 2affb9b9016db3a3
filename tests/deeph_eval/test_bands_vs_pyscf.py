"""The acceptance test: bands from a DFT run's H(R), S(R) reproduce the DFT code's own band energies."""

import json

import numpy as np
import pytest
from ase.build import bulk

dft = pytest.importorskip("data_prep.dft")

from data_prep.deeph_format import write_deeph  # noqa: E402
from deeph_eval.cli import main  # noqa: E402


@pytest.mark.slow
def test_si_bands_from_deeph_folder_match_pyscf(tmp_path):
    si = bulk("Si", "diamond", a=5.43)
    # cheap SCF; a 12 Å block radius makes the real-space truncation negligible (µeV)
    settings = dft.DFTSettings(kmesh=(2, 2, 2), ke_cutoff=30, smearing=0.0, conv_tol=1e-8, radius=12.0)
    result = dft.run_dft(si, settings)
    folder = write_deeph(result.structure, tmp_path / "si")
    rc = main(["bands", "--hamiltonian", str(folder), "--out", str(tmp_path / "out"), "--npoints", "24",
               "--kspacing", "0.4"])
    assert rc == 0
    data = json.loads((tmp_path / "out" / "bands.json").read_text())
    ours = np.array(data["energies_eV"])
    theirs = dft.pyscf_band_energies(result.scf, np.array(data["kpts_frac"]))
    assert np.abs(ours - theirs).max() < 1e-3  # eV, every band at every path k-point
    n_occ = result.structure.info["n_electrons"] // 2
    assert data["filling"]["is_metal"] is False
    assert data["filling"]["vbm"] == pytest.approx(theirs[:, n_occ - 1].max(), abs=1e-3)
    assert data["filling"]["cbm"] >= theirs[:, n_occ].min() - 1e-3  # CBM may lie off the path (mesh points too)
