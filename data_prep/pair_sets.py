"""H and S on one pair set, so every DeepH tool reads a folder the same way.

A predicted folder has H for the pairs within the model's cutoff and S for the pairs within the overlap
radius (larger). Some readers (DeepH-dock's converters) drop the Hamiltonian when the two sets differ. We
complete both to their union with explicit zero blocks: H is zero beyond the model's cutoff (what every
solver assumed anyway, so the bands do not change), and S keeps all its exact blocks (trimming S to the
cutoff would change the generalized eigenproblem and could make S(k) indefinite).
"""

from __future__ import annotations

import numpy as np

from .deeph_format import Blocks, DeepHStructure


def _completed(blocks: Blocks, keys, n_orb: np.ndarray) -> tuple[Blocks, int]:
    dtype = next(iter(blocks.values())).dtype if blocks else np.float64
    missing = [k for k in keys if k not in blocks]
    out = dict(blocks)
    for k in missing:
        out[k] = np.zeros((n_orb[k[3]], n_orb[k[4]]), dtype=dtype)
    return out, len(missing)


def on_one_pair_set(st: DeepHStructure) -> tuple[DeepHStructure, int, int]:
    """``st`` with H and S on the union of their pairs; also the number of zero H and zero S blocks added."""
    if st.hamiltonians is None or st.overlaps is None or st.hamiltonians.keys() == st.overlaps.keys():
        return st, 0, 0
    keys = sorted(set(st.hamiltonians) | set(st.overlaps))
    n_orb = st.n_orbitals()
    h, n_h = _completed(st.hamiltonians, keys, n_orb)
    s, n_s = _completed(st.overlaps, keys, n_orb)
    return DeepHStructure(**{**st.__dict__, "hamiltonians": h, "overlaps": s}), n_h, n_s
