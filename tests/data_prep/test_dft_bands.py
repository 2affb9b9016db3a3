"""One real PySCF run of distorted Si2, checked as physics: H(R) real and Hermitian, exact overlaps,
bands from the stored blocks equal PySCF's bands at k-points off every mesh, DeepH round trip."""

import numpy as np
import pytest
from ase import Atoms

from data_prep.deeph_format import check_hermitian, read_deeph, write_deeph
from data_prep.dft import DFTSettings, alias_free_radius, dense_kmesh_for_radius, pyscf_band_energies, run_dft
from data_prep.dft.fidelity import band_energies_from_blocks, band_fidelity, edge_window
from data_prep.dft.realspace import blocks_from_kmesh
from data_prep.kspace import band_energies, bloch_sum

SI2 = Atoms("Si2", positions=[[0.0, 0.05, 0.0], [1.40, 1.33, 1.38]],
            cell=[[0.0, 2.715, 2.715], [2.715, 0.0, 2.715], [2.715, 2.715, 0.0]], pbc=True)


@pytest.fixture(scope="module")
def si2():
    return run_dft(SI2, DFTSettings(kmesh=(2, 2, 2), radius=9.5, threads=2))


def test_bloch_sum_of_a_chain_is_a_cosine_band():
    blocks = {(0, 0, 0, 0, 0): np.array([[0.5]]), (1, 0, 0, 0, 0): np.array([[-1.0]]),
              (-1, 0, 0, 0, 0): np.array([[-1.0]])}
    k = np.array([[0.0, 0, 0], [0.25, 0.3, 0], [0.5, 0, 0.7]])
    assert np.allclose(bloch_sum(blocks, [1], k)[:, 0, 0], 0.5 - 2 * np.cos(2 * np.pi * k[:, 0]))


def test_dense_mesh_holds_the_radius_alias_free():
    cell = SI2.cell[:]
    mesh = dense_kmesh_for_radius(cell, 9.5)
    assert alias_free_radius(cell, mesh) >= 9.5
    assert alias_free_radius(cell, np.array(mesh) - 1) < 9.5  # and is the smallest such mesh


@pytest.mark.slow
def test_blocks_are_real_hermitian_and_exact(si2):
    st = si2.structure
    assert st.info["radius"] == pytest.approx(9.5) and st.info["max_imag_h_ev"] < 1e-8
    assert check_hermitian(st.hamiltonians, "H", tol=1e-9) < 1e-9
    assert check_hermitian(st.overlaps, "S", tol=1e-12) < 1e-12
    assert st.info["n_electrons"] == 8 and st.orbital_types == [[0, 1], [0, 1]]
    assert st.info["dft"]["basis"] == "SZV-MOLOPT-SR-GTH" and st.info["dft"]["kmesh"] == [2, 2, 2]
    # Exact two-centre overlaps agree with the Bloch-inverted PySCF overlap on the dense mesh.
    cell = si2.scf.cell
    kd = cell.make_kpts(si2.dense_kmesh)
    pairs = np.array(sorted(st.overlaps))
    s_ft, _ = blocks_from_kmesh(cell, np.asarray(cell.pbc_intor("int1e_ovlp", hermi=1, kpts=kd)),
                                cell.get_scaled_kpts(kd), pairs)
    assert max(np.abs(s_ft[k] - st.overlaps[k]).max() for k in s_ft) < 1e-5


@pytest.mark.slow
def test_bands_from_blocks_match_pyscf_off_mesh(si2):
    r = band_fidelity(si2.structure, mf=si2.scf, n_kpts=4, window=6.0, seed=1)
    assert r["n_values"] >= 4 * 4
    assert r["max_mev"] < 3.0, r  # 9.5 Å blocks: meV-level
    # Fermi level lies between the bands: 8 electrons fill 4 of the 8 bands at every k.
    bands = band_energies_from_blocks(si2.structure, [[0.1, 0.2, 0.3], [0.5, 0.5, 0.0]])
    assert np.all(bands[:, 3] < si2.structure.fermi_level + 0.1)


@pytest.mark.slow
def test_truncation_radius_controls_the_band_error(si2):
    st = si2.structure
    near = {k for k in st.hamiltonians
            if np.linalg.norm(st.positions[k[4]] + np.array(k[:3]) @ st.cell - st.positions[k[3]]) < 6.0}
    k = [[0.21, 0.37, 0.05], [0.6, 0.1, 0.33]]
    ref = pyscf_band_energies(si2.scf, k)
    full = np.abs(band_energies_from_blocks(st, k) - ref).max()
    cut = np.abs(band_energies(*({b: m[b] for b in near} for m in (st.hamiltonians, st.overlaps)),
                               st.n_orbitals(), k) - ref).max()
    assert cut > 10 * full  # 6 Å blocks miss tens of meV that 9.5 Å blocks keep


@pytest.mark.slow
def test_deeph_round_trip_keeps_blocks_and_bands(si2, tmp_path):
    folder = write_deeph(si2.structure, tmp_path / "si2")
    back = read_deeph(folder)
    assert back.hamiltonians.keys() == si2.structure.hamiltonians.keys()
    assert all(np.array_equal(back.hamiltonians[k], v) for k, v in si2.structure.hamiltonians.items())
    assert back.fermi_level == pytest.approx(si2.structure.fermi_level)
    assert back.info["dft"]["dense_kmesh"] == list(si2.dense_kmesh)
    k = [[0.13, 0.27, 0.41]]
    assert np.allclose(band_energies_from_blocks(back, k), band_energies_from_blocks(si2.structure, k))


@pytest.mark.slow
def test_alias_radius_pushes_the_folded_tails_out_of_the_stored_blocks(si2):
    """Blocks stored to 5 Å from a mesh alias-free to only 5 Å carry H's folded-back tails; a mesh sized for a
    larger alias radius removes them (the 9.5 Å mesh of the fixture serves as the reference)."""
    from data_prep.dft.realspace import block_pairs
    from data_prep.dft.runner import fock_on_mesh, hartree_to_ev

    cell, st = si2.scf.cell, si2.structure
    pairs = block_pairs(st.cell, st.positions, 5.0)

    def blocks(alias_radius):
        mesh = dense_kmesh_for_radius(SI2.cell[:], alias_radius)
        kd = cell.get_scaled_kpts(cell.make_kpts(mesh))
        return blocks_from_kmesh(cell, fock_on_mesh(si2.scf, kd) * hartree_to_ev(), kd, pairs)[0]

    def worst(b):
        return max(np.abs(b[tuple(k)] - st.hamiltonians[tuple(k)]).max() for k in pairs)

    assert worst(blocks(5.0)) > 10 * worst(blocks(8.0))
    with pytest.raises(ValueError, match="alias_radius"):
        DFTSettings(radius=9.5, alias_radius=8.0)



def test_fidelity_window_spans_the_band_edges():
    # an insulator with a 6 eV gap: E_F ± 2 eV holds no band, the edge window holds the VBM and CBM bands
    ref = np.array([[-9.0, -3.2, 3.0, 8.0], [-8.5, -3.0, 3.3, 7.0]])
    assert edge_window(ref, 0.0, 2.0).tolist() == [[False, True, True, False], [False, True, True, False]]
    # a metal: E_F ± window, widened to the nearest band energies on either side of E_F (0.0 and 0.4 here)
    ref = np.array([[-2.5, -1.0, 0.4, 2.3], [-1.9, 0.0, 1.9, 3.0]])
    assert edge_window(ref, 0.1, 2.0).tolist() == [[False, True, True, True], [True, True, True, False]]
    # every band occupied (no empty band in the basis): the window ends at E_F + window
    assert edge_window(np.array([[-5.0, -1.0]]), 3.0, 2.0).tolist() == [[False, True]]


def test_cells_with_d_shells_get_the_finer_grid():
    from ase.build import bulk

    from data_prep.dft.fidelity import settings_from_info
    from data_prep.dft.structure import build_cell

    cr, si = bulk("Cr", "bcc", a=2.88), bulk("Si", "diamond", a=5.43)
    assert build_cell(si, DFTSettings()).ke_cutoff == 60.0
    assert build_cell(cr, DFTSettings()).ke_cutoff == 120.0
    assert build_cell(cr, DFTSettings(ke_cutoff_d=None)).ke_cutoff == 60.0
    # a folder written before the setting existed is checked with the one grid it was computed on
    from data_prep.deeph_format import DeepHStructure

    old = DeepHStructure(cell=cr.cell[:], positions=cr.positions, numbers=cr.numbers, orbital_types=[[0, 0, 1, 2]],
                         info={"dft": {"xc": "pbe", "ke_cutoff": 60.0}})
    assert settings_from_info(old).ke_cutoff_d is None


@pytest.mark.slow
def test_default_grid_leaves_no_noise_floor_in_far_blocks_of_a_3d_metal():
    """H_ij(R) of orbitals that do not overlap (S < 1e-6) must vanish. On the 60 Ha grid Cr's far blocks carry
    a grid-noise floor of ~2 meV (0.03 meV at 120 Ha, the default for cells with d shells)."""
    from ase.build import bulk

    res = run_dft(bulk("Cr", "bcc", a=2.88), DFTSettings(kmesh=(2, 2, 2), radius=9.5, alias_radius=9.5, threads=2))
    st = res.structure
    assert st.info["grid_ke_cutoff"] == 120.0
    far = [np.abs(h).max() for k, h in st.hamiltonians.items() if np.abs(st.overlaps[k]).max() < 1e-6]
    assert len(far) >= 10
    assert max(far) < 3e-4, f"far-block floor {1000 * max(far):.3f} meV"
