"""k-paths for the cell as given (2D, molecules, re-chosen cells), filling/gap, DOS and band errors."""

import numpy as np
import pytest
import scipy.linalg
from ase import Atoms
from ase.build import bulk, molecule, mx2
from pyscf_integrals import HARTREE_EV, integral_structure
from pyscf import gto

from deeph_eval.band_errors import band_errors
from deeph_eval.bands import compute_bands
from deeph_eval.dos import gaussian_dos, integrated_dos
from deeph_eval.electrons import filling
from deeph_eval.kpath import band_path, periodic_directions, uniform_mesh


def test_path_is_expressed_in_the_original_cell():
    """Si with a re-chosen (non-reduced) cell: same labels, same Cartesian special points, same bands."""
    si = bulk("Si", "diamond", a=5.43)
    other = si.copy()
    other.set_cell(np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]]) @ si.cell[:], scale_atoms=False)
    p1 = band_path(si.cell, si.positions, si.pbc, npoints=60)
    p2 = band_path(other.cell, other.positions, other.pbc, npoints=60)
    assert p1.labels == p2.labels and "X" in p1.labels and "L" in p1.labels
    cart1 = p1.kpts @ (2 * np.pi * np.linalg.inv(si.cell[:]).T)
    cart2 = p2.kpts @ (2 * np.pi * np.linalg.inv(other.cell[:]).T)
    # same star of k-points: |k| along the path agrees (ASE may pick a symmetry-equivalent orientation)
    np.testing.assert_allclose(np.linalg.norm(cart1, axis=1), np.linalg.norm(cart2, axis=1), atol=1e-8)
    x_point = p1.kpts[np.isclose(p1.x, p1.special_x[p1.labels.index("X")])][0] @ (2 * np.pi * np.linalg.inv(si.cell[:]).T)
    assert np.isclose(np.linalg.norm(x_point), 2 * np.pi / 5.43)  # FCC X = (2π/a)(1,0,0)
    st1, _ = integral_structure(si, n_electrons=8)
    st2, _ = integral_structure(other, n_electrons=8)
    b1 = compute_bands(st1, 8, kpath=p1, kspacing=0.5)
    b2 = compute_bands(st2, 8, kpath=p2, kspacing=0.5)
    np.testing.assert_allclose(b1.energies, b2.energies, atol=2e-4)


@pytest.mark.parametrize("path, npoints", [("GX", 2), ("GX,L", 3), ("GXWKGLUWLK,UX", 12), (None, 120)])
def test_path_axis_is_the_length_along_the_path_with_every_special_point_on_it(path, npoints):
    """x steps are the Cartesian |Δk| (zero only across a "," break) and each label sits on its special
    point, however coarse the path. (ASE's own sampling dropped X from "GX,L" at 3 points and gave a 2-point
    "GX" the axis [0, 0].)"""
    si = bulk("Si", "diamond", a=5.43)
    kp = band_path(si.cell, si.positions, si.pbc, npoints=npoints, path=path)
    assert len(kp.kpts) == npoints
    recip = 2 * np.pi * np.linalg.inv(si.cell[:]).T
    steps = np.linalg.norm(np.diff(kp.kpts @ recip, axis=0), axis=1)
    breaks = np.isclose(np.diff(kp.x), 0.0)
    np.testing.assert_allclose(np.diff(kp.x)[~breaks], steps[~breaks], atol=1e-12)
    assert breaks.sum() == kp.path.count(",")
    special = si.cell.bandpath(npoints=0).special_points
    names = [n for n in kp.path if n != ","]
    assert kp.labels == ["Γ" if n == "G" else n for n in names]
    for name, x in zip(names, kp.special_x):
        at = kp.kpts[np.isclose(kp.x, x)]
        assert np.all(np.isclose(at, special[name]), axis=1).any(), (name, at)
    assert np.isclose(kp.special_x[1], 2 * np.pi / 5.43)  # Γ-X = 2π/a in FCC


def test_slab_path_is_in_plane_whatever_the_vacuum_axis():
    layer = mx2("MoS2", vacuum=8.0)
    layer.pbc = True
    perm = [2, 0, 1]  # put the vacuum along the first lattice vector
    cell = layer.cell[:][perm][:, perm]
    pos = layer.positions[:, perm]
    assert periodic_directions(cell, pos, [True] * 3).tolist() == [False, True, True]
    path = band_path(cell, pos, [True] * 3, npoints=40)
    assert path.dimensionality == 2 and path.labels == ["Γ", "M", "K", "Γ"]
    assert np.all(path.kpts[:, 0] == 0.0)
    k_point = path.kpts[np.argmin(np.abs(path.x - path.special_x[path.labels.index("K")]))]
    k_cart = k_point @ (2 * np.pi * np.linalg.inv(cell).T)
    assert np.isclose(np.linalg.norm(k_cart), 4 * np.pi / (3 * 3.18))  # hexagonal K: 4π/(3a)


def test_molecule_levels_and_gap_match_pyscf():
    h2o = molecule("H2O")
    h2o.center(vacuum=6.0)
    h2o.pbc = False
    st, _ = integral_structure(h2o, basis="sto-3g", n_electrons=10)
    res = compute_bands(st, 10)
    assert res.kpath.dimensionality == 0 and len(res.kpath.kpts) == 1
    mol = gto.M(atom=[(s, p) for s, p in zip(h2o.get_chemical_symbols(), h2o.positions)], basis="sto-3g", unit="A")
    ref = scipy.linalg.eigh(mol.intor("int1e_kin") * HARTREE_EV, mol.intor("int1e_ovlp"), eigvals_only=True)
    np.testing.assert_allclose(res.energies[0], ref, atol=1e-6)
    assert not res.filling.is_metal
    assert np.isclose(res.filling.vbm, ref[4]) and np.isclose(res.filling.cbm, ref[5])
    assert np.isclose(res.filling.gap, ref[5] - ref[4]) and res.filling.fermi_level == res.filling.vbm


def test_metal_fermi_level_and_dos_count_the_electrons(si_integrals):
    st, _ = si_integrals  # kinetic-energy operator of Si in an s+p basis: no gap at 8 electrons
    from deeph_eval.solvers import dense_eigvals

    kpts, w = uniform_mesh([8, 8, 8])
    eigs = dense_eigvals(st.hamiltonians, st.overlaps, st.n_orbitals(), kpts)
    fill = filling(eigs, kpts, w, 8.0, smearing=0.1)
    assert fill.is_metal and fill.gap is None
    energies = np.linspace(eigs.min() - 1.0, eigs.max() + 1.0, 4001)
    dos = gaussian_dos(eigs, w, energies, sigma=0.1)
    ids = integrated_dos(energies, dos)
    assert abs(ids[-1] - 2 * eigs.shape[1]) < 1e-3  # every band holds 2 electrons
    assert abs(np.interp(fill.fermi_level, energies, ids) - 8.0) < 0.02


def test_structure_dos_dense_and_kpm_count_the_electrons(si_integrals):
    """The library DOS (what `deeph-eval dos` writes): both solvers hold 8 electrons below their Fermi level."""
    from deeph_eval.dos import structure_dos

    st, _ = si_integrals
    window = dict(sigma=0.3, emin=-25.0, emax=0.0, npts=4001)
    dense = structure_dos(st, 8.0, solver="dense", kspacing=0.3, smearing=0.1, **window)
    assert dense.meta["solver"] == "dense" and dense.filling is not None and dense.energies[-1] == dense.fermi_level
    assert abs(integrated_dos(dense.energies, dense.dos)[-1] - 8.0) < 0.05
    # KPM at Γ: a window over the whole spectrum holds 2 electrons per orbital
    probe = structure_dos(st, 8.0, solver="kpm", n_vectors=4, npts=2)  # energies are relative to E_F
    (lo, hi), ef = probe.meta["spectrum_eV"], probe.fermi_level
    kpm = structure_dos(st, 8.0, solver="kpm", n_vectors=4, sigma=0.3, npts=4001, emin=lo - 3 - ef, emax=hi + 3 - ef)
    assert kpm.meta["solver"] == "kpm" and kpm.filling is None and kpm.meta["n_moments"] > 0
    assert abs(integrated_dos(kpm.energies, kpm.dos)[-1] - 2 * st.n_orbitals().sum()) < 0.1
    with pytest.raises(ValueError, match="auto, dense or kpm"):
        structure_dos(st, 8.0, solver="lanczos")


def test_band_errors_see_an_energy_shift_only_without_alignment(si_integrals):
    """H + c·S shifts every eigenvalue by exactly c: 0 meV aligned on E_F, c in absolute energies."""
    st, _ = si_integrals
    shifted_h = {k: st.hamiltonians[k] + 0.25 * st.overlaps[k] for k in st.overlaps}
    shifted = st.__class__(**{**st.__dict__, "hamiltonians": shifted_h})
    path = band_path(st.cell, st.positions, st.pbc, npoints=30)
    a = compute_bands(st, 8, kpath=path, kspacing=0.5)
    b = compute_bands(shifted, 8, kpath=path, kspacing=0.5)
    aligned = band_errors(b.energies, a.energies, b.filling.fermi_level, a.filling.fermi_level, window=3.0)
    absolute = band_errors(b.energies, a.energies, b.filling.fermi_level, a.filling.fermi_level, window=3.0, align="none")
    assert aligned["max_abs_meV"] < 1e-3 and aligned["n_values"] > 0
    assert abs(absolute["mae_meV"] - 250.0) < 1e-3 and abs(aligned["fermi_shift_meV"] - 250.0) < 1e-3


def test_sparse_solver_matches_dense_bands(si_integrals):
    st, _ = si_integrals
    path = band_path(st.cell, st.positions, st.pbc, npoints=12)
    dense = compute_bands(st, 8, kpath=path, kspacing=0.5)
    sparse = compute_bands(st, 8, kpath=path, solver="sparse", n_bands=4, centre=dense.filling.fermi_level)
    cols = slice(sparse.band_offset, sparse.band_offset + sparse.energies.shape[1])
    ok = np.isfinite(sparse.energies)
    np.testing.assert_allclose(sparse.energies[ok], dense.energies[:, cols][ok], atol=1e-7)


def test_isolated_atom_in_box_is_a_molecule():
    atom = Atoms("Ar", positions=[[5, 5, 5]], cell=np.eye(3) * 10, pbc=True)
    assert band_path(atom.cell, atom.positions, atom.pbc).labels == ["Γ"]


def test_uniform_mesh_time_reversal_weights():
    k, w = uniform_mesh([4, 4, 4])
    assert len(k) == 36 and abs(w.sum() - 1) < 1e-12  # 8 self-partner points + 56/2
    full = np.stack(np.meshgrid(*[np.arange(4) / 4] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    # every mesh point is a representative or the time-reversed partner of one
    reps = {tuple(np.round(np.mod(x, 1), 6)) for x in k} | {tuple(np.round(np.mod(-x, 1), 6)) for x in k}
    assert reps == {tuple(np.round(x, 6)) for x in full}
