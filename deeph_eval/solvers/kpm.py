"""Number of levels of H c = ε S c below an energy, estimated without factorising: the kernel polynomial method.

For a large structure the exact count (Sylvester inertia of H − σS, ``shift_invert.count_below``) costs one sparse
LDLᴴ per energy, whose fill-in grows faster than N. This module estimates the whole counting function
N(E) = #{ε_i < E} at once, in time and memory linear in N, and is used to put the first trial Fermi level
close to the right place so that only one or two exact inertia counts are needed (``fermi.gamma_filling``),
and for the Γ DOS of large cells (``kpm_dos``).

KPM (Weiße et al., Rev. Mod. Phys. 78, 275 (2006)): with Ã = (S⁻¹H − c)/a scaled into [−1, 1], the step
function θ(x₀ − x) has Chebyshev coefficients c₀ = 1 − θ₀/π, c_n = −2 sin(nθ₀)/(nπ), θ₀ = arccos x₀, so
N(E) = Σ_n g_n c_n(E) tr T_n(Ã) with Jackson damping g_n. The traces are stochastic: tr M = E[zᵀMz] for
random ±1 vectors z, and tr T_n(S⁻¹H) is the trace of a matrix similar to T_n(S^-1/2 H S^-1/2), so no S^-1/2
is needed. S⁻¹ is applied by conjugate gradients preconditioned with a local inverse of S (``overlap_preconditioner``);
a local-orbital overlap is well conditioned (Si, SZV: κ(S) ≈ 13), so about ten S products suffice.
Resolution is ~ π·(spectral width)/n_moments; the stochastic error of N(E) is ~ √(2N / n_vectors).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from data_prep.kspace import orbital_offsets

from .dense import EigenError


def overlap_preconditioner(sk: sp.spmatrix, n_orb, threshold: float = 0.1) -> sp.csr_matrix:
    """M ≈ S⁻¹ for conjugate gradients: a local inverse, linear in N to build, store and apply.

    Row block a of M is row block a of the inverse of S restricted to atom a and the atoms whose overlap block
    with a has a Frobenius norm ≥ ``threshold``; M is then symmetrised, (M + Mᴴ)/2. S⁻¹ of a well-conditioned
    local-orbital overlap decays fast with distance, so these few neighbours hold most of it. Measured on a Si
    supercell (SZV, 6 Å overlaps): 17 of 46 neighbours kept, M costs 0.36 of an S product, and CG needs 9 steps
    instead of 32 at rtol 1e-8 (``threshold=inf`` keeps only the on-site blocks: block Jacobi).
    """
    n_orb = np.asarray(n_orb, dtype=np.int64)
    off = orbital_offsets(n_orb)
    n_atoms, dim = len(n_orb), int(off[-1])
    atom_of = np.repeat(np.arange(n_atoms), n_orb)
    sk = sk.tocsr()
    coo = sk.tocoo()
    strength = sp.csr_matrix((np.abs(coo.data) ** 2, (atom_of[coo.row], atom_of[coo.col])), shape=(n_atoms, n_atoms))
    strength.sum_duplicates()
    rows, cols, vals = [], [], []
    for a in range(n_atoms):
        lo, hi = strength.indptr[a], strength.indptr[a + 1]
        nbrs = strength.indices[lo:hi][(np.sqrt(strength.data[lo:hi]) >= threshold) | (strength.indices[lo:hi] == a)]
        idx = np.concatenate([np.arange(off[b], off[b + 1]) for b in nbrs])
        own = np.flatnonzero(atom_of[idx] == a)
        unit = np.zeros((len(idx), len(own)), dtype=sk.dtype)
        unit[own, np.arange(len(own))] = 1.0
        try:
            x = scipy.linalg.solve(sk[idx][:, idx].toarray(), unit, assume_a="pos")  # columns of the local inverse
        except np.linalg.LinAlgError as err:
            raise EigenError(f"overlap: S restricted to atom {a} and its neighbours is not positive definite "
                             f"(an over-complete basis?): {err}") from None
        rows.append(np.repeat(idx[own], len(idx))), cols.append(np.tile(idx, len(own))), vals.append(x.T.conj().ravel())
    local = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim))
    return ((local + local.conj().T) * 0.5).tocsr()


def solve_overlap(sk, precond, b: np.ndarray, *, rtol: float = 1e-8, max_iter: int = 500, where: str = "") -> np.ndarray:
    """S X = B for all columns of B at once: preconditioned conjugate gradients (S Hermitian positive definite).

    ``precond``: ``overlap_preconditioner(sk, n_orb)``, or None for none. A local inverse is positive definite
    whenever it approximates S⁻¹ well; if it is not (rᴴMr ≤ 0 for some residual), the solve restarts without it.
    """
    x = np.zeros_like(b)
    r = b.copy()
    z = r if precond is None else precond @ r
    p = z.copy()
    rz = np.einsum("ij,ij->j", r.conj(), z).real
    b_norm = np.maximum(np.linalg.norm(b, axis=0), 1e-300)
    for _ in range(max_iter):
        r_norm = np.linalg.norm(r, axis=0)
        if np.all(r_norm <= rtol * b_norm):
            return x
        if precond is not None and np.any((rz <= 0) & (r_norm > 0)):
            warnings.warn(f"{where or 'overlap'}: the local-inverse preconditioner of S is not positive definite; "
                          "solving without it", RuntimeWarning, stacklevel=2)
            return solve_overlap(sk, None, b, rtol=rtol, max_iter=max_iter, where=where)
        sp_ = sk @ p
        alpha = rz / np.einsum("ij,ij->j", p.conj(), sp_).real
        if np.any(alpha <= 0):
            raise EigenError(f"{where or 'overlap'}: S is not positive definite (conjugate gradients broke down)")
        x += p * alpha
        r -= sp_ * alpha
        z = r if precond is None else precond @ r
        rz_new = np.einsum("ij,ij->j", r.conj(), z).real
        p = z + p * (rz_new / np.where(rz > 0, rz, 1.0))
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
    precond = overlap_preconditioner(sk, n_orb)
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
