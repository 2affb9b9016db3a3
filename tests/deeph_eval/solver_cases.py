"""k-points and a folded supercell shared by the solver tests."""

import numpy as np

from deeph_eval.blocklist import BlockList, supercell_blocks
from deeph_eval.solvers import SparseBloch, dense_eigvals

KPTS = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.13, -0.27, 0.41], [0.5, 0.5, 0.5]])


def folded_supercell(st, n: int):
    """Sparse H, S of the n×n×n supercell, and the primitive bands on the n×n×n mesh (sorted): its Γ levels."""
    n_orb = st.n_orbitals()
    reps = (n, n, n)
    sh = SparseBloch(supercell_blocks(BlockList.from_blocks(st.hamiltonians, n_orb), reps))
    ss = SparseBloch(supercell_blocks(BlockList.from_blocks(st.overlaps, n_orb), reps))
    mesh = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    folded = np.sort(dense_eigvals(st.hamiltonians, st.overlaps, n_orb, mesh).ravel())
    return sh, ss, folded
