"""Sparse shift-invert: the levels of H(k) c = ε S(k) c nearest an energy σ, with their band index.

One sparse LU of H(k) − σS(k) and a restarted block Krylov method on (H − σS)⁻¹S. The LU is done with a symmetric
permutation and diagonal pivots, so when it succeeds it is an LDLᴴ factorization and, by Sylvester's law of
inertia, the number of negative pivots is the number of eigenvalues below σ: this gives the band *index* of every
computed level (needed to place the VBM/CBM from the electron count) without computing the lower spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .dense import EigenError, format_k
from .sparse_bloch import SparseBloch, bloch_pair


@dataclass
class NearbyLevels:
    energies: np.ndarray  # ascending, eV
    first_index: int | None  # 0-based band index of energies[0] (None if the inertia is unknown)
    sigma: float


def _factorize_symmetric(a: sp.spmatrix):
    """LU of a Hermitian matrix with a symmetric fill-reducing permutation and diagonal pivots."""
    lu = spla.splu(
        a.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    symmetric = np.array_equal(lu.perm_r, lu.perm_c)
    n_below = int(np.count_nonzero(lu.U.diagonal().real < 0)) if symmetric else None
    return lu, n_below


_SINGLE = {np.dtype(np.float64): np.float32, np.dtype(np.complex128): np.complex64}


class RefinedSolver:
    """(H − σS)⁻¹ from a single-precision sparse LDLᴴ plus iterative refinement in double precision.

    The factor's fill-in, not H or S, is what limits system size (9,826-atom Si at 6 Å: ~10 GB in double), so
    it is kept in single precision: half the memory and factorization time. Each solve is corrected with the double-precision
    residual, x ← x + LU⁻¹(b − Ax), until ‖b − Ax‖ ≤ 1e-6‖b‖ (one step when κ(A)·ε₃₂ ≪ 1: σ not within
    ~µeV of a level); if that fails the matrix is refactorised in double precision. Pivot signs, hence the
    inertia, are those of the single-precision factor.
    """

    def __init__(self, a: sp.spmatrix):
        self.a = a.tocsr()
        self.lu, self.n_below = _factorize_symmetric(self.a.astype(_SINGLE[self.a.dtype]))
        self.single = True

    def _double(self) -> None:
        self.lu = None  # free the single-precision factor first
        self.lu, self.n_below = _factorize_symmetric(self.a)
        self.single = False

    def solve(self, b: np.ndarray) -> np.ndarray:
        if not self.single:
            return self.lu.solve(b)
        low = self.lu.solve(b.astype(_SINGLE[np.dtype(b.dtype)]))
        x = low.astype(b.dtype)
        b_norm = np.linalg.norm(b, axis=0)
        for _ in range(4):
            r = b - self.a @ x
            if np.all(np.linalg.norm(r, axis=0) <= 1e-6 * b_norm):
                return x
            x += self.lu.solve(r.astype(low.dtype))
        self._double()
        return self.lu.solve(b)


def _orthonormal_columns(w: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """Orthonormal basis of the part of span(w) orthogonal to ``basis`` (two Gram-Schmidt passes, rank-revealing)."""
    for _ in range(2):
        if basis is not None:
            w = w - basis @ (basis.conj().T @ w)
    u, sv, _ = np.linalg.svd(w, full_matrices=False)
    return u[:, sv > 1e-10 * max(sv[0], 1e-300)]


def _hermitian(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.conj().T)


def _ranked(mu: np.ndarray, both_sides: bool) -> np.ndarray:
    """Ritz indices in the order they are wanted: largest |μ| (nearest σ) first, or alternating below/above σ."""
    order = np.argsort(-np.abs(mu), kind="stable")
    if not both_sides:
        return order
    below, above = order[mu[order] < 0], order[mu[order] >= 0]
    k = min(len(below), len(above))
    pairs = np.stack([below[:k], above[:k]], axis=1).ravel()
    return np.concatenate([pairs, below[k:], above[k:]])


def block_krylov_shift_invert(lu, hk, sk, sigma: float, n_levels: int, *, tol: float, where: str,
                               both_sides: bool = False, depth: int = 16, max_cycles: int = 60):
    """Restarted block Krylov method for T = (H − σS)⁻¹S, the levels of H c = ε S c nearest σ.

    Each cycle grows K = span{X, TX, T²X, …} (Euclidean-orthonormal columns V, with W = TV) one block at a
    time and after each block solves the projected problem of T in the S inner product,
    (SV)ᴴW y = μ VᴴSV y, μ = 1/(ε − σ): the levels nearest σ are the *extreme* μ, so no spurious interior
    Ritz values appear (a plain Rayleigh–Ritz on (H, S) gives them near σ and stalls). It stops as soon as
    the wanted Ritz pairs have converged, so the number of solves adapts to the spectrum; after ``depth``
    blocks it restarts from X = W y for the largest |μ|.
    A block, not single-vector Lanczos (``eigsh``): from one start vector Lanczos sees one vector per
    eigenspace and, on a highly symmetric supercell (folded k-points give 3- and 6-fold Γ levels), returned
    only part of a degenerate cluster (432-atom Si: 3 of 6 copies). The block carries spare vectors so
    clusters that straddle the n_levels-th level still converge.
    ``both_sides``: alternately the next level below σ and the next above (VBM and CBM with σ in a gap,
    however asymmetric the gap) instead of the nearest ones.
    Energies are the Rayleigh quotients of the Ritz vectors; converged when every wanted residual
    ‖Hz − εSz‖/‖Sz‖ ≤ √tol·max(1, |σ|) eV (the energy error is ~ residual² / distance to the next level).
    """
    dim = hk.shape[0]
    m = min(dim - 1, n_levels + max(8, n_levels // 2))
    depth = max(2, min(depth, (dim - 1) // m))
    limit = np.sqrt(tol) * max(1.0, abs(sigma))
    x = np.random.default_rng(0).standard_normal((dim, m)).astype(hk.dtype)
    for _ in range(max_cycles):
        block = _orthonormal_columns(x, None)
        v = w = sv = None
        a = b = np.zeros((0, 0), dtype=hk.dtype)  # projected (SV)ᴴW and VᴴSV, grown a block at a time
        for _ in range(depth):
            s_block = np.asarray(sk @ block)
            w_block = lu.solve(s_block)
            if v is None:
                v, w, sv = block, w_block, s_block
            else:
                v, w, sv = np.hstack([v, block]), np.hstack([w, w_block]), np.hstack([sv, s_block])
            k_new = block.shape[1]
            a = _grow(a, sv.conj().T @ w_block, k_new)
            b = _grow(b, v.conj().T @ s_block, k_new)
            mu, y = scipy.linalg.eigh(_hermitian(a), _hermitian(b))
            y = y[:, _ranked(mu, both_sides)]
            z = v @ y[:, :n_levels]
            hz, sz = np.asarray(hk @ z), sv @ y[:, :n_levels]
            energies = np.einsum("ij,ij->j", z.conj(), hz).real / np.einsum("ij,ij->j", z.conj(), sz).real
            res = np.linalg.norm(hz - sz * energies, axis=0) / np.linalg.norm(sz, axis=0)
            if res.max() <= limit:
                return np.sort(energies)
            block = _orthonormal_columns(w_block, v)
            if block.shape[1] == 0:  # the Krylov space is invariant: it holds every level it can reach
                break
        x = w @ y[:, :m]
    raise EigenError(f"{where}: the levels nearest σ = {sigma:.4f} eV did not converge in {max_cycles} cycles "
                     f"(largest residual {res.max():.2e} eV)")


def _grow(proj: np.ndarray, new_cols: np.ndarray, k_new: int) -> np.ndarray:
    """Hermitian projected matrix with k_new more rows/columns; ``new_cols`` = its last k_new columns (all rows)."""
    k = proj.shape[0] + k_new
    out = np.empty((k, k), dtype=np.result_type(proj, new_cols))
    out[: k - k_new, : k - k_new] = proj
    out[:, k - k_new :] = new_cols
    out[k - k_new :, : k - k_new] = new_cols[: k - k_new].conj().T
    return out


class ShiftInvert:
    """One sparse LDLᴴ of H(k) − σS(k): the count of levels below σ, and the levels around σ.

    If H − σS is exactly singular (σ on a level) σ is nudged by ±0.1 meV; ``sigma`` is the value used.
    ``levels`` refactorizes 1 meV higher when a computed level lies on σ (band indices would be round-off).
    """

    def __init__(self, hk, sk, sigma: float, *, where: str = ""):
        self.hk, self.sk, self.where = hk, sk, where
        shift = 0.0
        for attempt in range(4):
            try:
                self.lu = RefinedSolver(hk - (sigma + shift) * sk)
                break
            except RuntimeError:  # exactly singular: σ sits on an eigenvalue
                shift = 1e-4 * (attempt + 1) * (-1) ** attempt
        else:
            raise EigenError(f"{where}: H(k) - σS(k) is singular for σ near {sigma} eV")
        self.sigma = sigma + shift

    @property
    def n_below(self) -> int | None:
        return self.lu.n_below  # that of the factor in use (a double-precision refactorization may replace it)

    def count_below(self) -> int:
        if self.n_below is None:
            raise EigenError(f"{self.where}: the sparse factorization of H - σS pivoted off the diagonal; "
                             "inertia unknown")
        return self.n_below

    def levels(self, n_levels: int, *, both_sides: bool = False, tol: float = 1e-10, moved: int = 0) -> NearbyLevels:
        dim = self.hk.shape[0]
        n_levels = min(n_levels, dim - 2)
        if n_levels < 1:
            raise EigenError(f"{self.where}: too few orbitals ({dim}) for the sparse solver; use the dense one")
        try:
            vals = block_krylov_shift_invert(self.lu, self.hk, self.sk, self.sigma, n_levels, tol=tol,
                                              where=self.where, both_sides=both_sides)
        except np.linalg.LinAlgError:
            # σ on a level to round-off: (H − σS)⁻¹ is ~1e12 along that level, and the Krylov basis loses its
            # independence (VᴴSV not positive definite); same remedy as below
            vals = None
        if vals is not None and self.n_below is None:
            return NearbyLevels(vals, None, self.sigma)
        if vals is None or np.abs(vals - self.sigma).min() < 1e-6 * max(1.0, abs(self.sigma)):
            # σ on a level (e.g. E_F = VBM of an insulator): whether the pivots counted it below σ is a matter
            # of round-off, so the band indices would be too; move σ off it
            if moved >= 3:
                raise EigenError(f"{self.where}: the levels near σ = {self.sigma:.4f} eV stay degenerate with σ "
                                 "after moving it 3 meV")
            return ShiftInvert(self.hk, self.sk, self.sigma + 1e-3, where=self.where).levels(
                n_levels, both_sides=both_sides, tol=tol, moved=moved + 1)
        return NearbyLevels(vals, self.n_below - int(np.count_nonzero(vals < self.sigma)), self.sigma)


def sparse_levels_near(
    h: SparseBloch, s: SparseBloch | None, kpt_frac, sigma: float, n_levels: int, *, tol: float = 1e-10,
    both_sides: bool = False, where: str = "",
) -> NearbyLevels:
    """The ``n_levels`` eigenvalues of H(k) c = ε S(k) c nearest ``sigma`` (eV), with their band index.

    ``both_sides``: alternately the next level below σ and the next above (as far as the spectrum allows).
    """
    where = f"{where} k={format_k(kpt_frac)}"
    return ShiftInvert(*bloch_pair(h, s, kpt_frac), sigma, where=where).levels(n_levels, both_sides=both_sides, tol=tol)


def count_below(h: SparseBloch, s: SparseBloch | None, kpt_frac, sigma: float, *, where: str = "") -> int:
    """Number of eigenvalues of H(k) c = ε S(k) c below ``sigma`` (Sylvester inertia of H − σS; S > 0)."""
    return ShiftInvert(*bloch_pair(h, s, kpt_frac), sigma, where=where).count_below()
