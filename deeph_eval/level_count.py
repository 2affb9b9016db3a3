"""Number of levels of H c = ε S c below an energy, estimated without factorising: the kernel polynomial method.

For a large structure the exact count (Sylvester inertia of H − σS, ``eigen.count_below``) costs one sparse
LDLᴴ per energy, whose fill-in grows faster than N. This module estimates the whole counting function
N(E) = #{ε_i < E} at once, in time and memory linear in N, and is used to put the first trial Fermi level
close to the right place so that only one or two exact inertia counts are needed (``fermi.gamma_filling``),
and for the Γ DOS of large cells (``kpm_dos``).

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


def spectral_bounds(hk, sk) -> tuple[float, float]:
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
class Moments:
    """Stochastic Chebyshev moments μ_n ≈ tr T_n(Ã) of one pencil, Ã = (S⁻¹H − centre)/half."""

    mu: np.ndarray
    centre: float
    half: float
    dim: int
    n_vectors: int

    @property
    def bounds(self) -> tuple[float, float]:
        return self.centre - self.half, self.centre + self.half

    @property
    def noise(self) -> float:
        """One standard deviation of a stochastic trace, in levels (≈ √(2·dim / n_vectors))."""
        return float(np.sqrt(2.0 * self.dim / self.n_vectors))

    def jackson(self) -> np.ndarray:
        m = len(self.mu)
        n, big = np.arange(m), m + 1
        return ((big - n) * np.cos(np.pi * n / big) + np.sin(np.pi * n / big) / np.tan(np.pi / big)) / big


def kpm_moments(hk, sk, n_orb, n_moments: int, *, n_vectors: int = 4, seed: int = 0,
                bounds: tuple[float, float] | None = None, where: str = "") -> Moments:
    """``bounds``: ``spectral_bounds(hk, sk)`` if the caller already has them."""
    dim = hk.shape[0]
    lo, hi = bounds if bounds is not None else spectral_bounds(hk, sk)
    centre, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
    precond = block_jacobi(sk, n_orb)
    z = np.random.default_rng(seed).choice([-1.0, 1.0], size=(dim, n_vectors)).astype(hk.dtype)

    def scaled(v):  # Ã v = (S⁻¹H v − c v)/a; 1e-6 is ample for an estimate smoothed over ~0.1 eV
        return (solve_overlap(sk, precond, np.asarray(hk @ v), rtol=1e-6, where=where) - centre * v) / half

    def trace(t):
        return np.mean(np.einsum("ij,ij->j", z.conj(), t).real)

    mu = np.empty(n_moments)
    t_prev, t = z, scaled(z)
    mu[0], mu[1] = trace(t_prev), trace(t)
    for n in range(2, n_moments):
        t_prev, t = t, 2.0 * scaled(t) - t_prev
        mu[n] = trace(t)
    return Moments(mu, centre, half, dim, n_vectors)


@dataclass
class LevelCount:
    """Estimated counting function N(E) of one H(k), S(k): number of levels below ``energies``."""

    energies: np.ndarray  # eV, ascending grid
    counts: np.ndarray  # estimated levels below each energy
    dim: int
    bounds: tuple[float, float]
    noise: float  # one standard deviation of the stochastic estimate, levels

    def energy_at(self, count: float) -> float:
        """Energy where the (monotone-clipped) estimate reaches ``count`` levels."""
        n = np.maximum.accumulate(np.clip(self.counts, 0, self.dim))
        return float(np.interp(count, n, self.energies))

    def count_at(self, energy: float) -> float:
        return float(np.interp(energy, self.energies, np.maximum.accumulate(np.clip(self.counts, 0, self.dim))))

    def fermi_estimate(self, n_electrons: float) -> float:
        """E_F estimate: the flattest stretch of N(E) (a gap) where N(E) is within 3 noise σ of N_e/2, its middle.

        An insulator's plateau may sit a noise σ or two off N_e/2, so the window is wide and the flattest
        part of it (lowest DOS), not the crossing point, is taken; for a metal that is near the crossing.
        """
        target = n_electrons / 2.0
        n = np.maximum.accumulate(np.clip(self.counts, 0, self.dim))
        lo, hi = self.energy_at(target - 3 * self.noise), self.energy_at(target + 3 * self.noise)
        inside = np.flatnonzero((self.energies >= lo) & (self.energies <= hi))
        if len(inside) < 3:
            return 0.5 * (lo + hi)
        slope = np.gradient(n, self.energies)[inside]
        flat = slope <= slope.min() + 0.1 * (slope.max() - slope.min())
        # the longest run of consecutive flat grid points
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flat.astype(int), [0]])))
        starts, stops = edges[::2], edges[1::2]
        k = int(np.argmax(stops - starts))
        return float(0.5 * (self.energies[inside[starts[k]]] + self.energies[inside[stops[k] - 1]]))


def level_count(moments: Moments, n_grid: int = 4001) -> LevelCount:
    """N(E) from the moments: Jackson-damped Chebyshev series of the step θ(E − ε) on a grid over the spectrum."""
    lo, hi = moments.bounds
    energies = np.linspace(lo, hi, n_grid)
    theta0 = np.arccos(np.clip((energies - moments.centre) / moments.half, -1.0, 1.0))
    n = np.arange(1, len(moments.mu))
    coeff = np.empty((n_grid, len(moments.mu)))
    coeff[:, 0] = 1.0 - theta0 / np.pi
    coeff[:, 1:] = -2.0 * np.sin(np.outer(theta0, n)) / (np.pi * n)
    return LevelCount(energies, coeff @ (moments.jackson() * moments.mu), moments.dim, (lo, hi), moments.noise)


def kpm_level_count(hk, sk, n_orb, *, n_moments: int = 128, n_vectors: int = 4, seed: int = 0,
                    where: str = "") -> LevelCount:
    """KPM estimate of N(E) for the pencil (H(k), S(k)) on a grid spanning its whole spectrum."""
    return level_count(kpm_moments(hk, sk, n_orb, n_moments, n_vectors=n_vectors, seed=seed, where=where))


def moments_for_broadening(half_width: float, sigma: float) -> int:
    """Moments that resolve a Gaussian of width σ (eV) on a spectrum of half-width ``half_width`` (eV)."""
    return int(np.clip(np.ceil(4.0 * half_width / sigma), 64, 8192))


def kpm_dos(moments: Moments, energies, sigma: float, spin_factor: float = 2.0) -> np.ndarray:
    """DOS broadened by a Gaussian of width σ (eV), states/eV/cell (spin included), from the moments.

    ρ_σ(E) = Σ_i g_σ(E − ε_i) = tr g_σ(E − A): the Chebyshev coefficients of x ↦ g_σ(E − centre − half·x) by
    Chebyshev–Gauss quadrature, times the moments. No damping kernel: with ``moments_for_broadening`` the
    Gaussian's own coefficients have decayed to ~e⁻⁸ at the last moment, so there is no Gibbs ringing to damp
    and the broadening is σ alone.
    """
    m = len(moments.mu)
    k = 2 * m
    theta = np.pi * (np.arange(k) + 0.5) / k
    x = moments.centre + moments.half * np.cos(theta)  # quadrature nodes, eV
    energies = np.asarray(energies, dtype=float)
    g = np.exp(-0.5 * ((energies[:, None] - x[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    basis = np.cos(np.outer(theta, np.arange(m)))  # T_n(cos θ_k)
    coeff = g @ basis * (2.0 / k)
    coeff[:, 0] *= 0.5
    return spin_factor * coeff @ moments.mu
