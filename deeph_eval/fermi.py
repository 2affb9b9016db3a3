"""Fermi level (and gap) of a structure's H(R), S(R): dense k-mesh for small cells, Γ-point inertia for large ones.

Dense (≤ ``bands.DENSE_MAX_ORBITALS`` orbitals): all eigenvalues on a Γ-centred mesh, ``electrons.filling``.
Large: the eigenvalue count below σ comes from the inertia of H − σS at Γ (``eigen.count_below``, one sparse
LDLᴴ each); bisection on σ stops as soon as exactly N_e/2 levels lie below σ (σ is then in the gap), and
the levels nearest σ give VBM and CBM. A large cell is treated as a supercell: Γ only. If no σ with exactly
N_e/2 levels below exists within 1 meV (a metal, or degenerate levels at E_F), E_F is that σ.
"""

from __future__ import annotations

import numpy as np

from data_prep.deeph_format import DeepHStructure

from .bands import DENSE_MAX_ORBITALS, checked_pair
from .blocklist import BlockList
from .eigen import count_below, dense_eigvals, sparse_levels_near
from .electrons import DEFAULT_SMEARING, GAP_TOL, Filling, filling
from .kpath import mesh_size, periodic_directions, uniform_mesh
from .sparse_bloch import SparseBloch

GAMMA = np.zeros(3)


def fermi_filling(st: DeepHStructure, n_electrons: float, *, kspacing: float = 0.2,
                  smearing: float = DEFAULT_SMEARING, solver: str = "auto") -> Filling:
    h, s = checked_pair(st)
    n_orb = st.n_orbitals()
    where = st.source or "structure"
    if solver == "auto":
        solver = "dense" if n_orb.sum() <= DENSE_MAX_ORBITALS else "sparse"
    if solver == "dense":
        periodic = periodic_directions(st.cell, st.positions, st.pbc)
        mesh, weights = uniform_mesh(mesh_size(st.cell, periodic, kspacing))
        eigs = dense_eigvals(h, s, n_orb, mesh, where=where)
        return filling(eigs, mesh, weights, n_electrons, smearing=smearing, where=where)
    sh = SparseBloch(BlockList.from_blocks(h, n_orb))
    ss = None if s is None else SparseBloch(BlockList.from_blocks(s, n_orb))
    return inertia_filling(sh, ss, n_electrons, where=where)


def _bracket(h: SparseBloch, s: SparseBloch | None) -> tuple[float, float]:
    hd = h.matrix(GAMMA).diagonal().real
    sd = np.ones_like(hd) if s is None else s.matrix(GAMMA).diagonal().real
    q = hd / sd
    return float(q.min()) - 20.0, float(q.max()) + 20.0


def inertia_filling(h: SparseBloch, s: SparseBloch | None, n_electrons: float, *, tol: float = 1e-3,
                    where: str = "") -> Filling:
    n_occ = n_electrons / 2.0
    target = int(np.ceil(n_occ - 1e-8))
    lo, hi = _bracket(h, s)
    while count_below(h, s, GAMMA, lo, where=where) > 0:
        lo -= 2 * (hi - lo)
    while count_below(h, s, GAMMA, hi, where=where) < target:
        hi += 2 * (hi - lo)
    sigma = None
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        n = count_below(h, s, GAMMA, mid, where=where)
        if n == target and abs(n_occ - target) < 1e-8:
            sigma = mid
            break
        if n < target:
            lo = mid
        else:
            hi = mid
    if sigma is None:
        return Filling(fermi_level=0.5 * (lo + hi), is_metal=True, n_electrons=n_electrons)
    lv = sparse_levels_near(h, s, GAMMA, sigma, 8, where=where)
    idx = lv.first_index + np.arange(len(lv.energies))
    vbm, cbm = lv.energies[idx == target - 1], lv.energies[idx == target]
    if len(vbm) and len(cbm) and cbm[0] - vbm[0] > GAP_TOL:
        gap = float(cbm[0] - vbm[0])
        return Filling(fermi_level=float(vbm[0]), is_metal=False, n_electrons=n_electrons, vbm=float(vbm[0]),
                       cbm=float(cbm[0]), gap=gap, direct_gap=gap, is_direct=True, vbm_kpt=[0.0, 0.0, 0.0],
                       cbm_kpt=[0.0, 0.0, 0.0])
    return Filling(fermi_level=float(sigma), is_metal=True, n_electrons=n_electrons)
