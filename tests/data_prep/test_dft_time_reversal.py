"""The SCF's grid work on half of the k-mesh (``data_prep.dft.time_reversal``) gives PySCF's own numbers."""

import numpy as np


def _two_scfs():
    from ase.build import bulk
    from pyscf.pbc.dft.multigrid import MultiGridNumInt

    from data_prep.dft import DFTSettings
    from data_prep.dft.runner import initial_density, make_scf
    from data_prep.dft.structure import build_cell

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += [0.05, -0.03, 0.02]  # no inversion symmetry: H(k) is complex
    settings = DFTSettings(ke_cutoff=20)
    cell = build_cell(atoms, settings, "Si2")
    kpts = cell.make_kpts((3, 3, 2))  # Γ, (0,0,1/2) and 8 pairs k, -k
    half = make_scf(cell, kpts, settings)
    stock = make_scf(cell, kpts, settings)
    stock._numint = MultiGridNumInt(cell)
    assert type(half._numint).__name__ == "HalfMeshMultiGrid"
    return half, stock, initial_density(stock)[0]


def test_half_mesh_potential_and_pseudopotential_equal_the_full_mesh_ones():
    half, stock, dm = _two_scfs()
    v_half, v_stock = half.get_veff(dm=dm), stock.get_veff(dm=dm)
    assert np.abs(v_stock.imag).max() > 1e-4
    # ~1e-7 Ha: PySCF's own matrices at k and at k + G (the mesh's -k) differ by this much (grid integration)
    np.testing.assert_allclose(v_half, v_stock, atol=3e-7, rtol=0)
    assert abs(v_half.exc - v_stock.exc) < 1e-8 and abs(v_half.ecoul - v_stock.ecoul) < 1e-8
    np.testing.assert_allclose(half.get_hcore(), stock.get_hcore(), atol=3e-7, rtol=0)


def test_half_mesh_scf_converges_to_the_same_solution():
    half, stock, dm = _two_scfs()
    half.kernel(dm0=dm)
    stock.kernel(dm0=dm)
    assert half.converged and stock.converged
    assert abs(half.e_tot - stock.e_tot) < 1e-6
    np.testing.assert_allclose(np.asarray(half.mo_energy), np.asarray(stock.mo_energy), atol=1e-6, rtol=0)
