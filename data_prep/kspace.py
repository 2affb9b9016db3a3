"""Real-space blocks -> Bloch matrices: H(k) = Σ_R e^{i 2π k·n} H(R), the one place this sum is written.

Convention (periodic gauge, no intra-cell phase): with H_ij(R) = <φ_i,0|H|φ_j,R> and R = n·cell,

    H_ij(k) = Σ_n exp(+i 2π k_frac · n) H_ij(n)

so the Hermiticity of real-space blocks, H_ij(R) = H_ji(-R)ᵀ, makes H(k) Hermitian. Eigenvalues of the
generalized problem H(k) c = ε S(k) c do not depend on the gauge.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .deeph_format import Blocks


def orbital_offsets(n_orb) -> np.ndarray:
    """Start index of each atom's orbitals in the full matrix, plus the total at the end."""
    return np.concatenate([[0], np.cumsum(np.asarray(n_orb, dtype=np.int64))])


def bloch_sum(blocks: Blocks, n_orb, kpts_frac) -> np.ndarray:
    """Dense (n_k, n_tot, n_tot) complex matrices Σ_R e^{i2πk·R} M(R) at fractional k-points (n_k, 3)."""
    kpts = np.atleast_2d(np.asarray(kpts_frac, dtype=float))
    off = orbital_offsets(n_orb)
    out = np.zeros((len(kpts), off[-1], off[-1]), dtype=np.complex128)
    for (rx, ry, rz, i, j), blk in blocks.items():
        phase = np.exp(2j * np.pi * (kpts @ np.array([rx, ry, rz], dtype=float)))
        out[:, off[i] : off[i + 1], off[j] : off[j + 1]] += phase[:, None, None] * blk[None]
    return out


def band_energies(hamiltonians: Blocks, overlaps: Blocks | None, n_orb, kpts_frac) -> np.ndarray:
    """Eigenvalues (n_k, n_tot) of H(k) c = ε S(k) c (orthogonal basis when ``overlaps`` is None)."""
    hk = bloch_sum(hamiltonians, n_orb, kpts_frac)
    sk = None if overlaps is None else bloch_sum(overlaps, n_orb, kpts_frac)
    out = np.empty(hk.shape[:2])
    for n in range(len(hk)):
        h = 0.5 * (hk[n] + hk[n].conj().T)
        if sk is None:
            out[n] = np.linalg.eigvalsh(h)
        else:
            s = 0.5 * (sk[n] + sk[n].conj().T)
            out[n] = scipy.linalg.eigh(h, s, eigvals_only=True)
    return out
