"""Which solver ``solver="auto"`` picks for a structure of a given size."""

from __future__ import annotations

DENSE_MAX_ORBITALS = 3000  # above this, solver="auto" builds nothing dense
SPARSE_MAX_ORBITALS = 20_000  # above this, solver="auto" does not factorise (LDLᴴ fill-in grows ~N^1.4)


def auto_solver(n_orbitals: int) -> str:
    """``solver="auto"``: dense up to 3,000 orbitals, then the sparse LDLᴴ (exact band indices from its inertia),
    then matrix-free (memory linear in N; band indices from the electron count, see ``deeph_eval.bands``)."""
    if n_orbitals <= DENSE_MAX_ORBITALS:
        return "dense"
    return "sparse" if n_orbitals <= SPARSE_MAX_ORBITALS else "matrix-free"
