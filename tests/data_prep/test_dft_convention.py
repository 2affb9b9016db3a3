"""The PySCF -> OpenMX orbital conversion, proved with the DFT code itself: blocks of a rotated structure
equal D(l1)·B·D(l2)ᵀ of the original's blocks (in e3nn's basis, D from e3nn)."""

import numpy as np
import pytest
import torch
from ase import Atoms
from e3nn import o3

from data_prep.basis import openmx_to_e3nn
from data_prep.dft import DFTSettings, overlap_blocks, pyscf_to_openmx, run_dft


def _rotation(seed: int, proper: bool = True) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return q if proper else -q


def _rotated(atoms: Atoms, rot: np.ndarray) -> Atoms:
    return Atoms(numbers=atoms.numbers, positions=atoms.positions @ rot.T, cell=atoms.cell[:] @ rot.T, pbc=True)


def _atom_rotation(shells, rot: np.ndarray) -> np.ndarray:
    """OpenMX-order orbital rotation of one atom: blockdiag(U_lᵀ D_l(rot) U_l)."""
    mats = []
    for l in shells:
        d = o3.Irrep(l, (-1) ** l).D_from_matrix(torch.from_numpy(rot)).numpy()
        u = openmx_to_e3nn(l)
        mats.append(u.T @ d @ u)
    n = sum(m.shape[0] for m in mats)
    w, start = np.zeros((n, n)), 0
    for m in mats:
        w[start : start + len(m), start : start + len(m)] = m
        start += len(m)
    return w


def _assert_covariant(blocks, blocks_rot, shells, rot, atol):
    # atol: e3nn's D_from_matrix goes through Euler angles and is accurate to ~2e-7 in float64.
    assert blocks.keys() == blocks_rot.keys()
    ws = [_atom_rotation(s, rot) for s in shells]
    worst = max(np.abs(ws[k[3]] @ b @ ws[k[4]].T - blocks_rot[k]).max() for k, b in blocks.items())
    assert worst < atol, worst
    # ... and the test can fail: without the rotation the blocks differ
    assert max(np.abs(b - blocks_rot[k]).max() for k, b in blocks.items()) > 100 * atol


def test_pyscf_order_maps_to_openmx_by_signed_permutation():
    assert np.array_equal(pyscf_to_openmx(1), np.eye(3))  # PySCF p is (px, py, pz), as OpenMX
    for l in (2, 3):
        t = pyscf_to_openmx(l)
        assert np.array_equal(np.abs(t).sum(axis=0), np.ones(2 * l + 1)) and not np.array_equal(t, np.eye(2 * l + 1))


@pytest.mark.parametrize("proper", [True, False])
def test_overlap_of_rotated_structure_is_rotated_overlap_d_and_f(proper):
    # DZVP-MOLOPT-SR-GTH gives Ti s,p,d,f and O s,p,d shells.
    atoms = Atoms("TiO", positions=[[0.1, 0.2, 0.0], [1.3, 0.9, 1.1]],
                  cell=[[3.6, 0.2, 0.1], [0.3, 3.9, -0.2], [0.1, 0.4, 4.2]], pbc=True)
    rot = _rotation(3, proper)
    s = overlap_blocks(atoms, "DZVP-MOLOPT-SR-GTH", radius=5.0)
    s_rot = overlap_blocks(_rotated(atoms, rot), "DZVP-MOLOPT-SR-GTH", radius=5.0)
    from data_prep.dft import build_cell, cell_shells

    shells = cell_shells(build_cell(atoms, DFTSettings(basis="DZVP-MOLOPT-SR-GTH")))
    assert 3 in shells[0] and 2 in shells[1]
    _assert_covariant(s, s_rot, shells, rot, atol=2e-6)


@pytest.mark.slow
def test_hamiltonian_of_rotated_structure_is_rotated_hamiltonian_p():
    # Distorted Si2 (SZV: s, p) — one DFT run per orientation, tiny mesh. H and S go through the same
    # PySCF -> OpenMX transform, whose d and f parts the overlap tests above prove.
    atoms = Atoms("Si2", positions=[[0.0, 0.1, 0.0], [1.3, 1.4, 1.2]],
                  cell=[[0.1, 2.7, 2.8], [2.6, 0.0, 2.7], [2.8, 2.7, 0.2]], pbc=True)
    settings = DFTSettings(kmesh=(2, 2, 2), dense_kmesh=(2, 2, 2), radius=4.0, ke_cutoff=40, conv_tol=1e-11)
    rot = _rotation(7)
    a = run_dft(atoms, settings).structure
    b = run_dft(_rotated(atoms, rot), settings).structure
    assert a.orbital_types == [[0, 1], [0, 1]]
    _assert_covariant(a.hamiltonians, b.hamiltonians, a.orbital_types, rot, atol=2e-5)
    _assert_covariant(a.overlaps, b.overlaps, a.orbital_types, rot, atol=2e-6)
    assert abs(a.fermi_level - b.fermi_level) < 1e-5


def test_overlap_blocks_do_not_depend_on_how_atoms_are_grouped():
    """Exact S(R) is computed a group of home atoms at a time (linear memory on 10k-atom cells): every pair,
    on-site block and periodic image must come out the same whatever the grouping."""
    from ase.build import bulk

    from data_prep.dft.realspace import block_pairs, exact_overlap_blocks
    from data_prep.dft.structure import build_cell

    atoms = bulk("SiC", "zincblende", a=4.36).repeat((2, 2, 1))
    cell = build_cell(atoms, DFTSettings(basis="SZV-MOLOPT-SR-GTH", radius=5.0))
    pairs = block_pairs(np.asarray(atoms.cell[:], float), atoms.positions, 5.0)
    whole = exact_overlap_blocks(cell, pairs, group=len(atoms))
    assert len(whole) == len(pairs) and any(k[:3] != (0, 0, 0) for k in whole)
    for group in (1, 3):
        parts = exact_overlap_blocks(cell, pairs, group=group)
        assert parts.keys() == whole.keys()
        assert max(np.abs(parts[k] - whole[k]).max() for k in whole) < 1e-14
    for (rx, ry, rz, i, j), blk in whole.items():  # S_ij(R) = S_ji(-R)ᵀ
        np.testing.assert_allclose(blk, whole[(-rx, -ry, -rz, j, i)].T, atol=1e-12)


def test_scf_starts_from_a_guess_pyscf_can_make_for_every_element():
    """PySCF's MINAO guess fails for Sc (GTH q11); the run falls back to the core-Hamiltonian guess."""
    import numpy as np
    from ase import Atoms

    from data_prep.dft import DFTSettings, build_cell
    from data_prep.dft.runner import initial_density, make_scf

    settings = DFTSettings(kmesh=(1, 1, 1), ke_cutoff=20)
    for symbol, expected in (("Si", "minao"), ("Sc", "1e")):
        atoms = Atoms([symbol] * 2, positions=[[0, 0, 0], [1.6, 1.6, 1.6]], cell=np.eye(3) * 6, pbc=True)
        cell = build_cell(atoms, settings, symbol)
        dm, name = initial_density(make_scf(cell, cell.make_kpts((1, 1, 1)), settings))
        assert name == expected
        nelec = np.einsum("kij,kji->", dm, np.asarray(cell.pbc_intor("int1e_ovlp", kpts=cell.make_kpts((1, 1, 1)))))
        assert abs(nelec.real - cell.nelectron) < 1e-6


def test_dense_mesh_fock_by_time_reversal_equals_direct():
    """H(-k) = H(k)*: the Kohn-Sham matrices of half the dense mesh give all of it, equal to computing each."""
    import numpy as np
    from ase.build import bulk

    from data_prep.dft import DFTSettings, run_scf
    from data_prep.dft.runner import fock_at, fock_on_mesh
    from data_prep.dft.time_reversal import time_reversal_partners

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += [0.05, -0.03, 0.02]  # no inversion symmetry: H(k) is complex
    mf, _ = run_scf(atoms, DFTSettings(kmesh=(2, 2, 2), ke_cutoff=20))
    mesh = (3, 3, 2)
    kfrac = mf.cell.get_scaled_kpts(mf.cell.make_kpts(mesh))
    computed, _ = time_reversal_partners(kfrac)
    assert len(computed) == 10  # 18 points: Γ, (0,0,1/2) and 8 pairs
    direct = fock_at(mf, mf.cell.get_abs_kpts(kfrac))
    assert np.abs(direct.imag).max() > 1e-4
    # 1e-6 Ha: the direct matrices themselves change by ~1e-7 Ha between k and k + G (grid integration)
    np.testing.assert_allclose(fock_on_mesh(mf, kfrac), direct, atol=1e-6, rtol=0)
