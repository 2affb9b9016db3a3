"""Which solver `--solver auto` picks by size."""

from deeph_eval.solvers import DENSE_MAX_ORBITALS, SPARSE_MAX_ORBITALS, auto_solver

def test_auto_solver_regimes():
    """`--solver auto`: dense, then the factorization (exact inertia), then matrix-free (linear memory)."""
    assert [auto_solver(n) for n in (64, DENSE_MAX_ORBITALS, DENSE_MAX_ORBITALS + 1, SPARSE_MAX_ORBITALS,
                                     SPARSE_MAX_ORBITALS + 1, 39_304)] == [
        "dense", "dense", "sparse", "sparse", "matrix-free", "matrix-free"]
