"""The levels of H c = ε S c nearest an energy σ from products with H and S only: memory linear in N.

The shift-invert solver (``eigen.ShiftInvert``) keeps a sparse LDLᴴ of H − σS whose fill-in grows faster than the
number of atoms (3D bulk: ~N^1.4 between 10³ and 10⁴ atoms; nested dissection cannot do better than N^4/3).
This solver stores only H, S and a fixed number of block vectors.

Folded spectrum: A = S⁻¹(H − σS) is self-adjoint in the S inner product and its eigenvalues are ε − σ, so the
levels nearest σ are the *smallest* θ = (ε − σ)² of the pencil ((H − σS)S⁻¹(H − σS), S): an extremal problem, so
Rayleigh–Ritz on a Krylov space converges to them without the spurious interior Ritz values a plain (H, S)
projection produces near σ. The space is a restarted block Krylov space of A; its degree-2k polynomials contain
every degree-k polynomial of the folded operator A², so it converges at least as fast as Krylov on A² for the same
number of products. With R = (H − σS)V and W = S⁻¹R (conjugate gradients, as in the KPM level count), the
projected pencil is (RᴴW, VᴴSV). Levels at σ − δ and σ + δ share θ, so a final Rayleigh–Ritz of (H, S) inside the
selected vectors separates them; energies are those Rayleigh quotients and converge when every wanted residual
‖Hz − εSz‖/‖Sz‖ ≤ √tol·max(1, |σ|) eV (energy error ~ residual² / distance to the next level).

Cost: each block step is one CG solve with S (~35 products at κ(S) ≈ 13) for all block vectors, and a level
converges at a rate ~½·√(Δθ/θ_max) per step, Δθ being the folded gap between the last wanted level and the first
unwanted one: near-degenerate band-edge clusters of a large supercell make that small. Measured on Si supercells
(``bench/inference_scaling.py --solver matrix-free``, docs/evaluation.md): memory ~N (3,456 atoms: 387 MiB against
1.4 GB for the shift-invert factorization) but 2–9× the shift-invert time up to there; use it when the
factorization does not fit in memory.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

from .eigen import EigenError, NearbyLevels, _grow, _hermitian, _orthonormal_columns, _ranked
from .level_count import overlap_preconditioner, solve_overlap

log = logging.getLogger(__name__)


def folded_levels(hk, sk, n_orb, sigma: float, n_levels: int, *, both_sides: bool = False, tol: float = 1e-8,
                  depth: int = 16, max_cycles: int = 100, where: str = "") -> np.ndarray:
    """The ``n_levels`` eigenvalues of H c = ε S c nearest ``sigma`` (eV), ascending, without factorising.

    ``both_sides``: alternately the next level below σ and the next above. The block carries as many spare
    vectors as wanted ones: on a large supercell the levels near a band edge come in near-degenerate clusters
    that straddle the n_levels-th level.
    """
    dim = hk.shape[0]
    n_levels = min(n_levels, dim - 2)
    if n_levels < 1:
        raise EigenError(f"{where}: too few orbitals ({dim}) for the matrix-free solver; use the dense one")
    m = min(dim - 1, n_levels + max(16, n_levels))
    depth = max(2, min(depth, (dim - 1) // m))
    limit = np.sqrt(tol) * max(1.0, abs(sigma))
    shifted = (hk - sigma * sk).tocsr()
    precond = overlap_preconditioner(sk, n_orb)
    x = np.random.default_rng(0).standard_normal((dim, m)).astype(hk.dtype)
    v_store = np.empty((dim, depth * m), dtype=hk.dtype)  # V and R = (H − σS)V, filled a block at a time
    r_store = np.empty_like(v_store)
    for _ in range(max_cycles):
        block = _orthonormal_columns(x, None)
        k = 0
        # projected RᴴS⁻¹R, VᴴSV and Vᴴ(H − σS)V, grown a block at a time
        folded = mass = shifted_proj = np.zeros((0, 0), dtype=hk.dtype)
        for _ in range(depth):
            r_block = np.asarray(shifted @ block)
            w_block = solve_overlap(sk, precond, r_block, rtol=1e-8, where=where)
            s_block = np.asarray(sk @ block)
            v_store[:, k : k + block.shape[1]], r_store[:, k : k + block.shape[1]] = block, r_block
            k += block.shape[1]
            v, r = v_store[:, :k], r_store[:, :k]
            folded = _grow(folded, r.conj().T @ w_block, block.shape[1])
            mass = _grow(mass, v.conj().T @ s_block, block.shape[1])
            shifted_proj = _grow(shifted_proj, v.conj().T @ r_block, block.shape[1])
            theta, y = scipy.linalg.eigh(_hermitian(folded), _hermitian(mass))  # ascending θ = (ε − σ)²
            if both_sides:  # keep the m/2 nearest σ, then the nearest on alternate sides (σ on a band edge)
                side = np.sign(np.einsum("ij,ij->j", y.conj(), shifted_proj @ y).real)
                with np.errstate(divide="ignore"):
                    alternate = _ranked(side / np.sqrt(np.maximum(theta, 0.0)), True)
                keep = np.arange(m // 2)
                y = y[:, np.concatenate([keep, alternate[~np.isin(alternate, keep)]])]
            y = y[:, :m]
            z = v @ y
            sz = np.asarray(sk @ z)
            hz = r @ y + sigma * sz  # H V = R + σ S V
            energies, u = scipy.linalg.eigh(_hermitian(z.conj().T @ hz), _hermitian(z.conj().T @ sz))
            with np.errstate(divide="ignore"):
                wanted = _ranked(1.0 / (energies - sigma), both_sides)[:n_levels]
            hu, su = hz @ u[:, wanted], sz @ u[:, wanted]
            res = np.linalg.norm(hu - su * energies[wanted], axis=0) / np.linalg.norm(su, axis=0)
            log.debug("block %d: largest residual %.2e eV (limit %.1e)", k // m, res.max(), limit)
            if res.max() <= limit:
                return np.sort(energies[wanted])
            block = _orthonormal_columns(w_block, v)
            if block.shape[1] == 0:  # the Krylov space is invariant: it holds every level it can reach
                break
        x = z
    raise EigenError(f"{where}: the levels nearest σ = {sigma:.4f} eV did not converge in {max_cycles} cycles of the "
                     f"matrix-free solver (largest residual {res.max():.2e} eV)")


def nearby_levels(hk, sk, n_orb, sigma: float, n_levels: int, n_below: int, *, where: str = "") -> NearbyLevels:
    """``folded_levels`` on both sides of σ, with band indices taken from ``n_below``, the number of levels below σ
    (not counted: there is no factorization; for σ in a gap it is the number of occupied levels). A level on σ
    (E_F = VBM, as stored for an insulator) counts as below it.
    """
    energies = folded_levels(hk, sk, n_orb, sigma, n_levels, both_sides=True, where=where)
    on_or_below = int(np.count_nonzero(energies < sigma + 1e-6 * max(1.0, abs(sigma))))
    return NearbyLevels(energies, n_below - on_or_below, sigma)
