"""Number of levels of H c = ε S c below an energy, estimated without factorising: the kernel polynomial method.

For a large structure the exact count (Sylvester inertia of H − σS, ``eigen.count_below``) costs one sparse
LDLᴴ per energy, whose fill-in grows faster than N. This module estimates the whole counting function
N(E) = #{ε_i < E} at once, in time and memory linear in N, and is used to put the first trial Fermi level
close to the right place so that only one or two exact inertia counts are needed (``fermi.inertia_filling``).

KPM (Weiße et al., Rev. Mod. Phys. 78, 275 (2006)): with Ã = (S⁻¹H − c)/a scaled into [−1, 1], the step
function θ(x₀ − x) has Chebyshev coefficients c₀ = 1 − θ₀/π, c_n = −2 sin(nθ₀)/(nπ), θ₀ = arccos x₀, so
N(E) = Σ_n g_n c_n(E) tr T_n(Ã) with Jackson damping g_n. The traces are stochastic: tr M = E[zᵀMz] for
random ±1 vectors z, and tr T_n(S⁻¹H) is the trace of a matrix similar to T_n(S^-1/2 H S^-1/2), so no S^-1/2
is needed. S⁻¹ is applied by conjugate gradients preconditioned with the inverse on-site (atom) blocks of S;
a local-orbital overlap is well conditioned (Si, SZV: κ(S) ≈ 13), so a few tens of S products suffice.
Resolution is ~ π·(spectral width)/n_moments; the stochastic error of N(E) is ~ √(2N / n_vectors).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from data_prep.kspace import orbital_offsets

from .eigen import EigenError


def block_jacobi(sk: sp.spmatrix, n_orb) -> sp.csr_matrix:
    """Inverse of the atom-diagonal blocks of S (a block-diagonal CSR): the CG preconditioner."""
    n_orb = np.asarray(n_orb, dtype=np.int64)
    off = orbital_offsets(n_orb)
    atom_of = np.repeat(np.arange(len(n_orb)), n_orb)
    coo = sk.tocoo()
    keep = atom_of[coo.row] == atom_of[coo.col]
    rows, cols, vals = coo.row[keep], coo.col[keep], coo.data[keep]
    inv_rows, inv_cols, inv_vals = [], [], []
    for size in np.unique(n_orb):
        atoms = np.flatnonzero(n_orb == size)
        blocks = np.zeros((len(atoms), size, size), dtype=sk.dtype)
        slot = np.full(len(n_orb), -1)
        slot[atoms] = np.arange(len(atoms))
        a = atom_of[rows]
        sel = slot[a] >= 0
        blocks[slot[a[sel]], rows[sel] - off[a[sel]], cols[sel] - off[a[sel]]] = vals[sel]
        inv = np.linalg.inv(blocks)
        base = off[atoms][:, None, None]
        r = np.broadcast_to(base + np.arange(size)[None, :, None], inv.shape)
        c = np.broadcast_to(base + np.arange(size)[None, None, :], inv.shape)
        inv_rows.append(r.ravel()), inv_cols.append(c.ravel()), inv_vals.append(inv.ravel())
    dim = int(off[-1])
    return sp.csr_matrix((np.concatenate(inv_vals), (np.concatenate(inv_rows), np.concatenate(inv_cols))),
                         shape=(dim, dim))


def solve_overlap(sk, precond, b: np.ndarray, *, rtol: float = 1e-8, max_iter: int = 500, where: str = "") -> np.ndarray:
    """S X = B for all columns of B at once: preconditioned conjugate gradients (S Hermitian positive definite)."""
    x = np.zeros_like(b)
    r = b.copy()
    z = precond @ r
    p = z.copy()
    rz = np.einsum("ij,ij->j", r.conj(), z).real
    b_norm = np.maximum(np.linalg.norm(b, axis=0), 1e-300)
    for _ in range(max_iter):
        if np.all(np.linalg.norm(r, axis=0) <= rtol * b_norm):
            return x
        sp_ = sk @ p
        alpha = rz / np.einsum("ij,ij->j", p.conj(), sp_).real
        if np.any(alpha <= 0):
            raise EigenError(f"{where or 'overlap'}: S is not positive definite (conjugate gradients broke down)")
        x += p * alpha
        r -= sp_ * alpha
        z = precond @ r
        rz_new = np.einsum("ij,ij->j", r.conj(), z).real
        p = z + p * (rz_new / rz)
        rz = rz_new
    raise EigenError(f"{where or 'overlap'}: S X = B did not converge in {max_iter} conjugate-gradient steps "
                     "(S nearly singular: an over-complete basis?)")


def spectral_bounds(hk, sk, *, where: str = "") -> tuple[float, float]:
    """Lowest and highest level of H c = ε S c (LOBPCG, no factorisation), padded so they enclose the spectrum."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((hk.shape[0], 2)).astype(hk.dtype)
    bounds = []
    for largest in (False, True):
        with warnings.catch_warnings():  # a loose tolerance is enough: the result is padded
            warnings.simplefilter("ignore", UserWarning)
            vals, _ = spla.lobpcg(hk, x, B=sk, largest=largest, maxiter=80, tol=1e-3)
        bounds.append(float(vals.real.min() if not largest else vals.real.max()))
    lo, hi = bounds
    pad = 0.02 * (hi - lo) + 0.1  # LOBPCG Ritz values lie inside the spectrum; pad outwards
    return lo - pad, hi + pad


@dataclass
class LevelCount:
    """Estimated counting function N(E) of one H(k), S(k): number of levels below ``energies``."""

    energies: np.ndarray  # eV, ascending grid
    counts: np.ndarray  # estimated levels below each energy
    dim: int
    bounds: tuple[float, float]
    noise: float  # one standard deviation of the stochastic estimate, levels (≈ √(2·dim / n_vectors))

    def energy_at(self, count: float) -> float:
        """Energy where the (monotone-clipped) estimate reaches ``count`` levels."""
        n = np.maximum.accumulate(np.clip(self.counts, 0, self.dim))
        return float(np.interp(count, n, self.energies))

    def count_at(self, energy: float) -> float:
        return float(np.interp(energy, self.energies, np.maximum.accumulate(np.clip(self.counts, 0, self.dim))))


def kpm_level_count(hk, sk, n_orb, *, n_moments: int = 128, n_vectors: int = 4, n_grid: int = 4001,
                    seed: int = 0, where: str = "") -> LevelCount:
    """KPM estimate of N(E) for the pencil (H(k), S(k)) on a grid spanning its whole spectrum."""
    dim = hk.shape[0]
    lo, hi = spectral_bounds(hk, sk, where=where)
    centre, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
    precond = block_jacobi(sk, n_orb)
    rng = np.random.default_rng(seed)
    z = rng.choice([-1.0, 1.0], size=(dim, n_vectors)).astype(hk.dtype)

    def scaled(v):  # Ã v = (S⁻¹H v − c v)/a
        return (solve_overlap(sk, precond, np.asarray(hk @ v), where=where) - centre * v) / half

    mu = np.empty(n_moments)
    t_prev, t = z, scaled(z)
    mu[0] = np.mean(np.einsum("ij,ij->j", z.conj(), t_prev).real)
    mu[1] = np.mean(np.einsum("ij,ij->j", z.conj(), t).real)
    for n in range(2, n_moments):
        t_prev, t = t, 2.0 * scaled(t) - t_prev
        mu[n] = np.mean(np.einsum("ij,ij->j", z.conj(), t).real)
    n = np.arange(n_moments)
    big = n_moments + 1  # Jackson kernel
    jackson = ((big - n) * np.cos(np.pi * n / big) + np.sin(np.pi * n / big) / np.tan(np.pi / big)) / big
    energies = np.linspace(lo, hi, n_grid)
    theta0 = np.arccos(np.clip((energies - centre) / half, -1.0, 1.0))
    coeff = np.empty((n_grid, n_moments))
    coeff[:, 0] = 1.0 - theta0 / np.pi
    coeff[:, 1:] = -2.0 * np.sin(np.outer(theta0, n[1:])) / (np.pi * n[1:])
    counts = coeff @ (jackson * mu)
    return LevelCount(energies, counts, dim, (lo, hi), float(np.sqrt(2.0 * dim / n_vectors)))
