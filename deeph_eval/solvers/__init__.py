"""Linear-algebra back ends for H(k) c = ε S(k) c, one module per method; import them from here.

- ``sparse_bloch``: H(k), S(k) as sparse matrices from real-space blocks (``SparseBloch``, ``bloch_pair``).
- ``dense``: all bands at each k-point (``dense_eigvals``).
- ``shift_invert``: the levels nearest an energy with their band index, from a sparse LDLᴴ
  (``sparse_levels_near``, ``count_below``, ``ShiftInvert``).
- ``matrix_free``: the same levels by MINRES, memory linear in N (``nearby_levels``, ``levels_near``).
- ``kpm``: kernel polynomial method: level counting N(E) and the DOS of large cells (``kpm_level_count``,
  ``kpm_dos``).
- ``choice``: which of them ``solver="auto"`` uses for a given size (``auto_solver``).
"""

from .choice import DENSE_MAX_ORBITALS, SPARSE_MAX_ORBITALS, auto_solver
from .dense import EigenError, dense_eigvals, format_k
from .kpm import (
    LevelCount,
    Moments,
    kpm_dos,
    kpm_level_count,
    kpm_moments,
    level_count,
    moments_for_broadening,
    overlap_preconditioner,
    solve_overlap,
    spectral_bounds,
)
from .matrix_free import levels_near, nearby_levels
from .shift_invert import NearbyLevels, ShiftInvert, count_below, sparse_levels_near
from .sparse_bloch import SparseBloch, bloch_pair

__all__ = [
    "DENSE_MAX_ORBITALS", "SPARSE_MAX_ORBITALS", "auto_solver", "EigenError", "dense_eigvals", "format_k",
    "LevelCount", "Moments", "kpm_dos", "kpm_level_count", "kpm_moments", "level_count", "moments_for_broadening",
    "overlap_preconditioner", "solve_overlap", "spectral_bounds", "levels_near", "nearby_levels", "NearbyLevels",
    "ShiftInvert", "count_below", "sparse_levels_near", "SparseBloch", "bloch_pair",
]
