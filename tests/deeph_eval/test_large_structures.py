"""Large-structure path: KPM level count, Fermi level and gap from Γ inertia or matrix-free, bands without a given E_F.

Real DFT data (PySCF Si from the ``dft_folders`` fixture) tiled onto a 3×3×3 supercell: its Γ levels are
exactly the primitive cell's levels on the 3×3×3 k-mesh (band folding), which the dense solver gives.
"""

import dataclasses

import numpy as np
import pytest

from data_prep.deeph_format import DeepHStructure, read_deeph
from deeph_eval.bands import compute_bands
from deeph_eval.blocklist import BlockList, supercell_blocks, supercell_geometry
from deeph_eval.fermi import gamma_filling, inertia_filling
from deeph_eval.kpath import KPath
from deeph_eval.solvers import SparseBloch, count_below, dense_eigvals, kpm_level_count

REPS = (3, 3, 3)


@pytest.fixture(scope="module")
def si_supercell(dft_folders):
    prim = read_deeph(dft_folders[0])
    n_orb = prim.n_orbitals()
    h = supercell_blocks(BlockList.from_blocks(prim.hamiltonians, n_orb), REPS)
    s = supercell_blocks(BlockList.from_blocks(prim.overlaps, n_orb), REPS)
    cell, pos, numbers = supercell_geometry(prim.cell, prim.positions, prim.numbers, REPS)
    big = DeepHStructure(cell=cell, positions=pos, numbers=numbers, orbital_types=prim.orbital_types * 27,
                         hamiltonians=h.to_blocks(), overlaps=s.to_blocks(), source="Si 3x3x3")
    mesh = np.stack(np.meshgrid(*[np.arange(3) / 3] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    folded = dense_eigvals(prim.hamiltonians, prim.overlaps, n_orb, mesh)  # (27, n_bands)
    return big, SparseBloch(h), SparseBloch(s), folded


def test_kpm_count_follows_the_exact_count(si_supercell):
    big, sh, ss, folded = si_supercell
    levels = np.sort(folded.ravel())
    est = kpm_level_count(sh.matrix([0, 0, 0]), ss.matrix([0, 0, 0]), sh.n_orb)
    assert est.bounds[0] < levels[0] and est.bounds[1] > levels[-1]
    resolution = np.pi * (est.bounds[1] - est.bounds[0]) / 128  # Jackson-smoothed step width
    for e in np.linspace(levels[0], levels[-1], 7)[1:-1]:
        lo, hi = np.count_nonzero(levels < e - resolution), np.count_nonzero(levels < e + resolution)
        assert lo - 4 * est.noise <= est.count_at(e) <= hi + 4 * est.noise


def test_inertia_filling_finds_the_folded_gap(si_supercell):
    big, sh, ss, folded = si_supercell
    n_electrons = 8 * 27  # Si: 4 valence electrons per atom, 54 atoms
    fill = inertia_filling(sh, ss, n_electrons, where="Si 3x3x3")
    assert not fill.is_metal
    np.testing.assert_allclose(fill.vbm, folded[:, 3].max(), atol=1e-6)
    np.testing.assert_allclose(fill.cbm, folded[:, 4].min(), atol=1e-6)
    assert count_below(sh, ss, [0, 0, 0], 0.5 * (fill.vbm + fill.cbm)) == n_electrons // 2


def test_matrix_free_filling_finds_the_folded_gap(si_supercell):
    """No factorization at all (as above 3000 orbitals): KPM places σ in the gap, the MINRES shift-invert solver
    gives VBM and CBM exactly."""
    big, sh, ss, folded = si_supercell
    fill, levels = gamma_filling(sh, ss, 8 * 27, n_levels=8, solver="matrix-free", max_counted=0, where="Si 3x3x3")
    assert not fill.is_metal
    np.testing.assert_allclose(fill.vbm, folded[:, 3].max(), atol=1e-6)
    np.testing.assert_allclose(fill.cbm, folded[:, 4].min(), atol=1e-6)
    all_levels = np.sort(folded.ravel())
    np.testing.assert_allclose(levels.energies, all_levels[levels.first_index : levels.first_index + 8], atol=1e-6)


@pytest.mark.parametrize("solver", ["sparse", "matrix-free"])
def test_hole_doped_cell_fills_to_its_own_electron_count(si_supercell, solver):
    """Six electrons fewer: E_F drops below the old VBM. The KPM estimate cannot tell that gap from the intrinsic
    one a few levels away (its noise is ±√(2N/4) levels), so on a cell this small the matrix-free filling
    counts the levels below σ with one LDLᴴ; without that count it reported the intrinsic gap."""
    big, sh, ss, folded = si_supercell
    levels = np.sort(folded.ravel())
    n_occ = 4 * 27 - 3
    fill, _ = gamma_filling(sh, ss, 2 * n_occ, n_levels=8, solver=solver, where="Si 3x3x3, 6 holes")
    if levels[n_occ] - levels[n_occ - 1] > 1e-3:
        assert not fill.is_metal
        assert fill.vbm == pytest.approx(levels[n_occ - 1], abs=1e-6)
        assert fill.cbm == pytest.approx(levels[n_occ], abs=1e-6)
    else:
        assert fill.is_metal
    assert fill.fermi_level < levels[4 * 27 - 1] - 1e-3 or fill.is_metal


@pytest.mark.parametrize("solver", ["sparse", "matrix-free"])
def test_sparse_bands_find_their_own_centre(si_supercell, solver):
    """No fermi_level in info.json and none given: the sparse bands still land around the gap."""
    big, sh, ss, folded = si_supercell
    gamma = KPath(kpts=np.zeros((1, 3)), x=np.zeros(1), special_x=np.zeros(1), labels=["Γ"], dimensionality=3, path="Γ")
    res = compute_bands(big, 8 * 27, kpath=gamma, solver=solver, n_bands=12)
    assert res.solver == solver
    assert not res.filling.is_metal
    levels = np.sort(folded.ravel())
    got = res.energies[0]
    np.testing.assert_allclose(got, levels[res.band_offset : res.band_offset + len(got)], atol=1e-6)
    assert res.band_offset < 4 * 27 < res.band_offset + len(got)  # both sides of the gap


def test_kpm_dos_cli_matches_the_folded_levels(si_supercell, tmp_path):
    """`deeph-eval dos --solver kpm` on the supercell folder: the Gaussian DOS of its exact Γ levels."""
    import json

    from data_prep.deeph_format import write_deeph
    from deeph_eval.cli import main
    from deeph_eval.dos import gaussian_dos

    big, sh, ss, folded = si_supercell
    big.info = {"n_electrons": 8 * 27}
    folder = write_deeph(big, tmp_path / "si333")
    out = tmp_path / "dos"
    assert main(["dos", "--hamiltonian", str(folder), "--out", str(out), "--solver", "kpm", "--sigma", "0.3",
                 "--n-vectors", "64", "--emin", "-12", "--emax", "8"]) == 0
    data = json.loads((out / "dos.json").read_text())
    assert data["solver"] == "kpm" and data["n_moments"] >= 4 * 12 / 0.3
    energies, dos = np.array(data["energies_eV"]), np.array(data["dos_states_per_eV"])
    exact = gaussian_dos(np.sort(folded.ravel())[None, :], [1.0], energies, 0.3)
    assert np.abs(dos - exact).mean() < 0.05 * exact.max()  # stochastic: ~√(2/(64·levels within σ))
    assert folded[:, 3].max() < data["fermi_level_eV"] < folded[:, 4].min()  # estimate lands in the gap


@pytest.mark.parametrize("solver", ["sparse", "matrix-free"])
def test_centre_on_a_level_keeps_band_indices(si_supercell, solver):
    """E_F = VBM (how an insulator's Fermi level is stored): σ sits on a level; indices must stay right."""
    big, sh, ss, folded = si_supercell
    levels = np.sort(folded.ravel())
    vbm = folded[:, 3].max()
    gamma = KPath(kpts=np.zeros((1, 3)), x=np.zeros(1), special_x=np.zeros(1), labels=["Γ"], dimensionality=3, path="Γ")
    res = compute_bands(big, 8 * 27, kpath=gamma, solver=solver, n_bands=8, centre=vbm)
    got = res.energies[0]
    np.testing.assert_allclose(got, levels[res.band_offset : res.band_offset + len(got)], atol=1e-6)
    assert res.filling.vbm == pytest.approx(vbm, abs=1e-6)


def test_matrix_free_bands_cli_equals_the_shift_invert_one(si_supercell, tmp_path, capsys):
    """`deeph-eval bands --solver matrix-free` (no factorization): the same band indices and energies along a path
    as the shift-invert solver, whose indices come from exact inertia. The folder stores E_F = VBM, as DFT codes
    do for an insulator; the shift-invert solver centres there, the matrix-free one must centre inside the gap."""
    import json

    from data_prep.deeph_format import write_deeph
    from deeph_eval.cli import main

    big, sh, ss, folded = si_supercell
    vbm, cbm = folded[:, 3].max(), folded[:, 4].min()
    big.info = {"n_electrons": 8 * 27}
    folder = write_deeph(dataclasses.replace(big, fermi_level=vbm), tmp_path / "si333")
    results = {}
    for solver in ("sparse", "matrix-free"):
        out = tmp_path / solver
        assert main(["bands", "--hamiltonian", str(folder), "--out", str(out), "--solver", solver, "--path", "GX",
                     "--npoints", "3", "--n-bands", "8"]) == 0
        assert (out / "bands.png").stat().st_size > 0
        steps = capsys.readouterr().err  # progress lines of the slow steps, with their times
        assert f"{solver} solver: 216 orbitals" in steps and "k-point 2/3" in steps and "k-point 3/3" in steps
        if solver == "matrix-free":  # centres on the Γ gap it finds, and reuses those Γ levels
            assert "E_F and gap at Γ from 216 electrons:" in steps and "k-point 1/3" not in steps
        else:  # centres on the stored E_F
            assert "E_F and gap" not in steps and "k-point 1/3" in steps
        results[solver] = json.loads((out / "bands.json").read_text())
    a, b = results["sparse"], results["matrix-free"]
    assert b["solver"] == "matrix-free" and not b["filling"]["is_metal"] and "assumed" in b["band_indices"]
    assert a["band_offset"] == b["band_offset"]
    np.testing.assert_allclose(np.array(b["energies_eV"], dtype=float), np.array(a["energies_eV"], dtype=float),
                               atol=1e-6)
    assert b["filling"]["vbm"] == pytest.approx(vbm, abs=1e-6)
    assert a["centre_eV"] == pytest.approx(vbm) and vbm + 0.3 < b["centre_eV"] < cbm - 0.3
