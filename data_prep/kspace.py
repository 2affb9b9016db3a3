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


def mesh_size(cell, periodic, kspacing: float) -> np.ndarray:
    """Points per direction so that the spacing is at most ``kspacing`` (1/Å, 2π included); 1 if not periodic."""
    recip_len = 2 * np.pi * np.linalg.norm(np.linalg.inv(np.asarray(cell, dtype=float)).T, axis=1)
    n = np.maximum(1, np.ceil(recip_len / kspacing).astype(int))
    return np.where(periodic, n, 1)


OVERLAP_CHECK_KSPACING = 0.2  # 1/Å (2π included): the mesh on which S(k) of stored or computed blocks is checked


def overlap_check_kpoints(cell, spacing: float = OVERLAP_CHECK_KSPACING) -> np.ndarray:
    """Fractional k-points to check S(k) on: the Γ-centred mesh with at most ``spacing`` (1/Å, 2π included)
    between points, and the zone-boundary points {0, 1/2}³ that an odd mesh misses (S(k) of truncated diffuse
    overlaps dips lowest there)."""
    mesh = mesh_size(cell, True, spacing)
    grid = np.stack(np.meshgrid(*[np.arange(n) / n for n in mesh], indexing="ij"), -1).reshape(-1, 3)
    corners = np.stack(np.meshgrid(*[[0.0, 0.5]] * 3, indexing="ij"), -1).reshape(-1, 3)
    return np.unique(np.concatenate([grid, corners]), axis=0)


def overlap_floor(overlaps: Blocks, n_orb, kpts_frac) -> np.ndarray:
    """Smallest eigenvalue of S(k) at each k-point. The full lattice sum is positive definite; blocks cut at a
    radius are not always: where the basis is diffuse (Rb, Cs s orbitals) the overlaps left out are not small."""
    sk = bloch_sum(overlaps, n_orb, kpts_frac)
    return np.array([np.linalg.eigvalsh(0.5 * (s + s.conj().T))[0] for s in sk])
