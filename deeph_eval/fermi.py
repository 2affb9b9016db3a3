"""Fermi level (and gap) of a structure's H(R), S(R): dense k-mesh for small cells, Γ-point inertia for large ones.

Dense (≤ ``eigen.DENSE_MAX_ORBITALS`` orbitals): all eigenvalues on a Γ-centred mesh, ``electrons.filling``.
Large (``solver="sparse"``): the eigenvalue count below σ comes from the inertia of H − σS at Γ
(``eigen.count_below``, one sparse LDLᴴ each); a KPM estimate of the count (``level_count``) places the trial σ,
and the search stops as soon as exactly N_e/2 levels lie below σ (σ is then in the gap); the levels nearest σ
give VBM and CBM. A large cell is treated as a supercell: Γ only. If no σ with exactly N_e/2 levels below exists
within 1 meV (a metal, or degenerate levels at E_F), E_F is that σ.
``solver="matrix-free"`` (memory linear in N): no factorization, so no exact count; σ is the KPM estimate and
the levels around it come from ``matrix_free.levels_near``. If they leave a gap around σ and the KPM count there
is within its noise of N_e/2, σ is taken to lie in *the* gap (exactly N_e/2 levels below): VBM, CBM and band
indices follow. Otherwise the structure is reported as a metal with E_F = the KPM estimate (resolution
~π·(spectral width)/(number of moments), ~0.6 eV for Si; see ``level_count``), and band indices assume N_e/2 levels
below E_F. The count is stochastic (±√(2N/4) levels), so a gap a few levels away from N_e/2 (a charged defect,
a doped cell) is not told apart from the one at N_e/2: such structures need the exact count (``solver="sparse"``).
Up to ``DENSE_MAX_ORBITALS`` orbitals σ is placed by exact LDLᴴ counts as for ``solver="sparse"`` (cheap there)
and only the levels come from the matrix-free solver: a small supercell's isolated Γ levels leave wide gaps a
few levels from N_e/2 that the KPM estimate cannot tell apart (54- and 128-atom Si with a predicted H: 1.96 and
1.43 eV for the true 0.89 eV gap without the counts).
"""

from __future__ import annotations

import numpy as np

from data_prep.deeph_format import DeepHStructure
from data_prep.kspace import mesh_size

from .blocklist import BlockList
from .checks import checked_pair
from .electrons import DEFAULT_SMEARING, GAP_TOL, Filling, filling
from .kpath import periodic_directions, uniform_mesh
from .solvers import (
    DENSE_MAX_ORBITALS,
    LevelCount,
    NearbyLevels,
    ShiftInvert,
    SparseBloch,
    auto_solver,
    bloch_pair,
    dense_eigvals,
    kpm_level_count,
    nearby_levels,
)

GAMMA = np.zeros(3)


def fermi_filling(st: DeepHStructure, n_electrons: float, *, kspacing: float = 0.2,
                  smearing: float = DEFAULT_SMEARING, solver: str = "auto") -> Filling:
    h, s = checked_pair(st)
    n_orb = st.n_orbitals()
    where = st.source or "structure"
    if solver == "auto":
        solver = auto_solver(int(n_orb.sum()))
    if solver == "dense":
        periodic = periodic_directions(st.cell, st.positions, st.pbc)
        mesh, weights = uniform_mesh(mesh_size(st.cell, periodic, kspacing))
        eigs = dense_eigvals(h, s, n_orb, mesh, where=where)
        return filling(eigs, mesh, weights, n_electrons, smearing=smearing, where=where)
    sh = SparseBloch(BlockList.from_blocks(h, n_orb))
    ss = None if s is None else SparseBloch(BlockList.from_blocks(s, n_orb))
    return gamma_filling(sh, ss, n_electrons, solver=solver, where=where)[0]


def inertia_filling(h: SparseBloch, s: SparseBloch | None, n_electrons: float, *, tol: float = 1e-3,
                    where: str = "") -> Filling:
    """E_F (and gap) of a large structure at Γ with as few sparse LDLᴴ as possible (see ``gamma_filling``)."""
    return gamma_filling(h, s, n_electrons, tol=tol, where=where)[0]


def occupied_levels(n_electrons: float) -> int:
    """Spin-degenerate levels holding ``n_electrons`` (the last one partly filled for an odd count)."""
    return int(np.ceil(n_electrons / 2.0 - 1e-8))


def gamma_filling(h: SparseBloch, s: SparseBloch | None, n_electrons: float, *, n_levels: int = 8,
                  tol: float = 1e-3, solver: str = "sparse", max_counted: int = DENSE_MAX_ORBITALS,
                  where: str = "") -> tuple[Filling, NearbyLevels | None]:
    """E_F (and gap) at Γ, and the ``n_levels`` Γ levels around it (half below, half above) from the same LDLᴴ.

    A KPM estimate of the level count N(E) (linear in N, ``level_count``) gives the first trial σ in the middle
    of the energies where N(E) is within its noise of N_e/2; each exact inertia count then moves σ by the
    KPM curve corrected by the observed miss, safeguarded by bisection on the bracket of exact counts.
    ``solver="matrix-free"``: the same search up to ``max_counted`` orbitals, then the levels without the
    factorization; above, no factorization at all (see the module docstring).
    """
    n_occ = n_electrons / 2.0
    target = occupied_levels(n_electrons)
    hk, sk = bloch_pair(h, s, GAMMA)
    if not 0 < target <= h.dim:
        raise ValueError(f"{where}: {n_electrons} electrons do not fit in {h.dim} spin-degenerate orbitals")
    est = kpm_level_count(hk, sk, h.n_orb, where=where)
    if solver not in ("sparse", "matrix-free"):
        raise ValueError(f"solver must be 'sparse' or 'matrix-free', got {solver!r}")
    if solver == "matrix-free" and h.dim > max_counted:
        return _matrix_free_filling(hk, sk, h.n_orb, est, n_electrons, target, max(n_levels, 2), where)
    lo, hi = est.bounds  # exact counts 0 and dim: the bounds enclose the spectrum
    sigma = est.fermi_estimate(n_electrons)
    found = None
    for _ in range(60):
        factor = ShiftInvert(hk, sk, sigma, where=where)
        n = factor.count_below()
        if n == target and abs(n_occ - target) < 1e-8:
            found = factor
            break
        sigma = factor.sigma
        del factor  # one factorization in memory at a time
        if n < target:
            lo = sigma
        else:
            hi = sigma
        if hi - lo <= tol:
            break
        step = est.energy_at(est.count_at(sigma) + (target - n) + (0.5 if n < target else -0.5))
        sigma = step if lo < step < hi and abs(step - sigma) > 0.1 * tol else 0.5 * (lo + hi)
    if found is None:
        return Filling(fermi_level=0.5 * (lo + hi), is_metal=True, n_electrons=n_electrons), None
    if solver == "matrix-free":  # small cell: σ placed by exact counts, the levels still without the factorization
        sigma = found.sigma
        del found
        return _gamma_result(nearby_levels(hk, sk, h.n_orb, sigma, max(n_levels, 2), target, where=where), target,
                             n_electrons)
    return _gamma_result(found.levels(max(n_levels, 2), both_sides=True), target, n_electrons)


def _gamma_result(lv: NearbyLevels, target: int, n_electrons: float) -> tuple[Filling, NearbyLevels]:
    """Insulator (VBM = level ``target - 1``, CBM = level ``target``) if they are a gap apart, else a metal at σ."""
    idx = lv.first_index + np.arange(len(lv.energies))
    vbm, cbm = lv.energies[idx == target - 1], lv.energies[idx == target]
    if len(vbm) and len(cbm) and cbm[0] - vbm[0] > GAP_TOL:
        gap = float(cbm[0] - vbm[0])
        return Filling(fermi_level=float(vbm[0]), is_metal=False, n_electrons=n_electrons, vbm=float(vbm[0]),
                       cbm=float(cbm[0]), gap=gap, direct_gap=gap, is_direct=True, vbm_kpt=[0.0, 0.0, 0.0],
                       cbm_kpt=[0.0, 0.0, 0.0]), lv
    return Filling(fermi_level=float(lv.sigma), is_metal=True, n_electrons=n_electrons), lv


def _matrix_free_filling(hk, sk, n_orb, est: LevelCount, n_electrons: float, target: int, n_levels: int,
                         where: str) -> tuple[Filling, NearbyLevels]:
    """E_F, gap and the levels around it at Γ without factorising (see the module docstring)."""
    sigma = est.fermi_estimate(n_electrons)
    lv = nearby_levels(hk, sk, n_orb, sigma, n_levels, target, where=where)
    integer = abs(n_electrons / 2.0 - target) < 1e-8
    if not integer or abs(est.count_at(sigma) - target) > 3 * est.noise:  # σ need not lie in a gap
        return Filling(fermi_level=sigma, is_metal=True, n_electrons=n_electrons), lv
    return _gamma_result(lv, target, n_electrons)
