"""The levels of H c = ε S c nearest an energy σ from products with H and S only: memory linear in N.

The shift-invert solver (``shift_invert.ShiftInvert``) keeps a sparse LDLᴴ of H − σS whose fill-in grows faster than the
number of atoms (3D bulk: ~N^1.4 between 10³ and 10⁴ atoms; nested dissection cannot do better than N^4/3).
This solver runs the same block Krylov method on T = (H − σS)⁻¹S (``shift_invert.block_krylov_shift_invert``) but
solves (H − σS)X = B iteratively, so it stores only H, S, a local inverse of S and a fixed number of block vectors.

Inner solver: MINRES (Paige & Saunders, SIAM J. Numer. Anal. 12, 617 (1975)), as H − σS is Hermitian but
indefinite, preconditioned with M ≈ S⁻¹ (``kpm.overlap_preconditioner``; MINRES needs M Hermitian positive
definite, not exact). The preconditioned operator M(H − σS) ≈ S⁻¹(H − σS) has the eigenvalues ε − σ, so its
condition number is (spectral half-width)/(distance from σ to the nearest level): for σ mid-gap in Si (SZV)
≈ 13.6 eV / 1.2 eV, and a solve to 1e-6 takes ~80-120 steps of one H − σS and one M product, whatever N.
Without M (κ(S) ≈ 13 on top) MINRES does not converge usefully. The inner solves need not be exact: the outer
Rayleigh–Ritz and its residual test use H and S themselves. σ must not sit on a level (H − σS singular), so the
solves use σ + 1 meV; levels on σ still count as below it.
"""

from __future__ import annotations

import numpy as np

from .dense import EigenError
from .kpm import overlap_preconditioner
from .shift_invert import NearbyLevels, block_krylov_shift_invert

SIGMA_OFFSET = 1e-3  # eV; the solves use σ + this, off a level that σ may sit on (E_F = VBM)


class MinresShiftInvert:
    """X = (H − σS)⁻¹B by preconditioned MINRES, one independent recurrence per column of B, run side by side.

    ``rtol``: on the preconditioned residual ‖r‖_M relative to ‖b‖_M. After ``max_iter`` steps the current
    iterate is returned: an inexact solve only slows the outer method, whose residual test is exact.
    """

    def __init__(self, hk, sk, sigma: float, precond, *, rtol: float = 1e-6, max_iter: int = 1000):
        self.shifted = (hk - sigma * sk).tocsr()
        self.precond, self.rtol, self.max_iter = precond, rtol, max_iter

    def solve(self, b: np.ndarray) -> np.ndarray:
        def dot(p, q):
            return np.einsum("ij,ij->j", p.conj(), q).real

        a, m = self.shifted, self.precond
        x = np.zeros_like(b)
        r_old, r = b.copy(), b.copy()  # Lanczos vectors r_{k-1}, r_k (unpreconditioned)
        y = m @ r
        beta0 = np.sqrt(np.maximum(dot(r, y), 0.0))
        beta, beta_old = beta0.copy(), np.ones_like(beta0)
        beta[beta0 == 0] = 1.0  # zero columns: x stays 0
        # QR of the Lanczos tridiagonal by Givens rotations (c, s); phibar: the current residual norm
        c, s = -np.ones_like(beta0), np.zeros_like(beta0)
        dbar, eps, phibar = np.zeros_like(beta0), np.zeros_like(beta0), beta0.copy()
        w, w_old = np.zeros_like(b), np.zeros_like(b)
        for step in range(1, self.max_iter + 1):
            v = y / beta
            y = np.asarray(a @ v)
            if step > 1:
                y -= r_old * (beta / beta_old)
            alpha = dot(v, y)
            y -= r * (alpha / beta)
            r_old, r = r, y
            y = m @ r
            beta_old, beta = beta, np.sqrt(np.maximum(dot(r, y), 0.0))
            eps_old = eps
            delta, gbar = c * dbar + s * alpha, s * dbar - c * alpha
            eps, dbar = s * beta, -c * beta
            gamma = np.maximum(np.hypot(gbar, beta), 1e-300)
            c, s = gbar / gamma, beta / gamma
            phi, phibar = c * phibar, s * phibar
            w_old, w = w, (v - w_old * eps_old - w * delta) / gamma
            x += w * phi
            if np.all(phibar <= self.rtol * beta0) or np.all(beta < 1e-300):  # converged, or an invariant space
                break
            beta = np.maximum(beta, 1e-300)
        return x


def levels_near(hk, sk, n_orb, sigma: float, n_levels: int, *, both_sides: bool = False, tol: float = 1e-8,
                where: str = "") -> np.ndarray:
    """The ``n_levels`` eigenvalues of H c = ε S c nearest ``sigma`` (eV), ascending, without factorising.

    ``both_sides``: alternately the next level below σ and the next above.
    """
    dim = hk.shape[0]
    n_levels = min(n_levels, dim - 2)
    if n_levels < 1:
        raise EigenError(f"{where}: too few orbitals ({dim}) for the matrix-free solver; use the dense one")
    shifted = sigma + SIGMA_OFFSET
    inner = MinresShiftInvert(hk, sk, shifted, overlap_preconditioner(sk, n_orb))
    return block_krylov_shift_invert(inner, hk, sk, shifted, n_levels, tol=tol, where=where, both_sides=both_sides)


def nearby_levels(hk, sk, n_orb, sigma: float, n_levels: int, n_below: int, *, where: str = "") -> NearbyLevels:
    """``levels_near`` on both sides of σ, with band indices taken from ``n_below``, the number of levels below σ
    (not counted: there is no factorization; for σ in a gap it is the number of occupied levels). A level on σ
    (E_F = VBM, as stored for an insulator) counts as below it.
    """
    energies = levels_near(hk, sk, n_orb, sigma, n_levels, both_sides=True, where=where)
    on_or_below = int(np.count_nonzero(energies < sigma + 1e-6 * max(1.0, abs(sigma))))
    return NearbyLevels(energies, n_below - on_or_below, sigma)
