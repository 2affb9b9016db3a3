"""Sparse Bloch sums H(k), S(k) against PySCF's own lattice-summed integrals and the dense sum."""

import numpy as np
from pyscf_integrals import HARTREE_EV
from solver_cases import KPTS

from data_prep.kspace import bloch_sum
from deeph_eval.blocklist import BlockList
from deeph_eval.solvers import SparseBloch

def test_sparse_bloch_matches_pyscf_lattice_sums(si_integrals):
    st, cell = si_integrals
    n_orb = st.n_orbitals()
    sh = SparseBloch(BlockList.from_blocks(st.hamiltonians, n_orb))
    ss = SparseBloch(BlockList.from_blocks(st.overlaps, n_orb))
    kabs = cell.get_abs_kpts(KPTS)
    t_ref = np.asarray(cell.pbc_intor("int1e_kin", kpts=kabs)) * HARTREE_EV
    s_ref = np.asarray(cell.pbc_intor("int1e_ovlp", kpts=kabs))
    for n, k in enumerate(KPTS):
        assert np.abs(ss.matrix(k).toarray() - s_ref[n]).max() < 1e-6
        assert np.abs(sh.matrix(k).toarray() - t_ref[n]).max() < 1e-4  # eV
    dense = bloch_sum(st.overlaps, n_orb, KPTS)
    assert np.abs(ss.matrix(KPTS[2]).toarray() - dense[2]).max() < 1e-12
    assert ss.matrix([0, 0, 0]).dtype == np.float64 and ss.matrix(KPTS[2]).dtype == np.complex128
