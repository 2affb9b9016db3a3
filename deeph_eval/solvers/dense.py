"""All bands: the generalized eigenproblem H(k) c = ε S(k) c solved densely at each k-point.

``scipy.linalg.eigh`` per k-point on ``data_prep.kspace.bloch_sum`` matrices, k-points in chunks so memory stays
(chunk, n, n).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from data_prep.deeph_format import Blocks
from data_prep.kspace import bloch_sum


class EigenError(ValueError):
    """The Hamiltonian/overlap pair has no physical spectrum (S not positive definite, ...)."""


def format_k(k) -> str:
    return "(" + ", ".join(f"{x:.4f}" for x in k) + ")"


def dense_eigvals(
    hamiltonians: Blocks, overlaps: Blocks | None, n_orb, kpts_frac, *, chunk: int = 32, where: str = ""
) -> np.ndarray:
    """All eigenvalues (n_k, n_orb_total), eV, ascending at each k."""
    kpts = np.atleast_2d(np.asarray(kpts_frac, dtype=float))
    n_tot = int(np.sum(n_orb))
    out = np.empty((len(kpts), n_tot))
    for start in range(0, len(kpts), chunk):
        ks = kpts[start : start + chunk]
        hk = bloch_sum(hamiltonians, n_orb, ks)
        sk = None if overlaps is None else bloch_sum(overlaps, n_orb, ks)
        for n, k in enumerate(ks):
            h = 0.5 * (hk[n] + hk[n].conj().T)
            if sk is None:
                out[start + n] = np.linalg.eigvalsh(h)
                continue
            s = 0.5 * (sk[n] + sk[n].conj().T)
            try:
                out[start + n] = scipy.linalg.eigh(h, s, eigvals_only=True)
            except np.linalg.LinAlgError:
                smin = float(np.linalg.eigvalsh(s)[0])
                raise EigenError(
                    f"{where or 'overlap'}: S(k) at k={format_k(k)} is not positive definite (smallest eigenvalue "
                    f"{smin:.3g}); the overlap blocks are incomplete (truncated where the basis is diffuse: Rb, Cs "
                    "s orbitals reach past a 9.5 Å radius) or do not belong to this structure"
                ) from None
    return out
