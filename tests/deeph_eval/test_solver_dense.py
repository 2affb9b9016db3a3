"""All bands at each k-point against PySCF's generalized eigenproblem; a bad overlap is reported."""

import numpy as np
import pytest
import scipy.linalg
from pyscf_integrals import HARTREE_EV
from solver_cases import KPTS

from deeph_eval.solvers import EigenError, dense_eigvals

def test_dense_eigenvalues_match_pyscf_generalized_problem(si_integrals):
    st, cell = si_integrals
    ours = dense_eigvals(st.hamiltonians, st.overlaps, st.n_orbitals(), KPTS)
    kabs = cell.get_abs_kpts(KPTS)
    t = np.asarray(cell.pbc_intor("int1e_kin", kpts=kabs)) * HARTREE_EV
    s = np.asarray(cell.pbc_intor("int1e_ovlp", kpts=kabs))
    ref = np.array([scipy.linalg.eigh(t[n], s[n], eigvals_only=True) for n in range(len(KPTS))])
    assert np.abs(ours - ref).max() < 1e-3  # eV; PySCF's lattice sums use their own cutoff


def test_overlap_that_is_not_positive_definite_is_reported(si_integrals):
    st, _ = si_integrals
    bad = {key: (blk if key[:3] == (0, 0, 0) and key[3] == key[4] else 3.0 * blk) for key, blk in st.overlaps.items()}
    with pytest.raises(EigenError, match="not positive definite"):
        dense_eigvals(st.hamiltonians, bad, st.n_orbitals(), [[0, 0, 0]], where="Si/overlaps.h5")
