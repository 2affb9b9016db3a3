"""Matrix-free (MINRES) shift-invert: the same levels as the dense and factorizing solvers."""

import numpy as np
from solver_cases import KPTS, folded_supercell

from deeph_eval.blocklist import BlockList, supercell_blocks
from deeph_eval.solvers import SparseBloch, bloch_pair, dense_eigvals, levels_near

def test_matrix_free_levels_match_dense_at_general_k(si_integrals):
    """Complex Hermitian H(k), S(k): the MINRES shift-invert solver (no factorization) gives the dense levels."""
    st, _ = si_integrals
    n_orb = st.n_orbitals()
    hb = supercell_blocks(BlockList.from_blocks(st.hamiltonians, n_orb), (2, 2, 1))
    sb = supercell_blocks(BlockList.from_blocks(st.overlaps, n_orb), (2, 2, 1))
    k = KPTS[2]
    dense = dense_eigvals(hb.to_blocks(), sb.to_blocks(), hb.n_orb, [k])[0]
    sigma = 0.5 * (dense[10] + dense[11])
    hk, sk = bloch_pair(SparseBloch(hb), SparseBloch(sb), k)
    assert np.iscomplexobj(hk.data)
    levels = levels_near(hk, sk, hb.n_orb, sigma, 8, both_sides=True, tol=1e-12)
    np.testing.assert_allclose(levels, dense[7:15], atol=1e-7)  # 4 below σ, 4 above


def test_matrix_free_levels_keep_whole_degenerate_clusters(si_integrals):
    """As the shift-invert test below: the 16 nearest levels cut a 16-fold cluster; the solver returns them all."""
    st, _ = si_integrals
    sh, ss, folded = folded_supercell(st, 4)
    n_occ = 240 + int(np.argmax(np.diff(folded[240:300]) > 0.05)) + 1
    sigma = folded[n_occ - 1] + 0.6 * (folded[n_occ] - folded[n_occ - 1])
    levels = levels_near(*bloch_pair(sh, ss, [0, 0, 0]), sh.n_orb, sigma, 16, tol=1e-12)
    nearest = np.sort(folded[np.argsort(np.abs(folded - sigma), kind="stable")[:16]])
    np.testing.assert_allclose(levels, nearest, atol=1e-6)
