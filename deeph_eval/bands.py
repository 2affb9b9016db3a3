"""Band structure and filling of one Hamiltonian (H(R), S(R) of a DeepH structure), dense or sparse.

``solver="dense"``: every band at every k (``scipy.linalg.eigh``), Fermi level from a uniform mesh.
``solver="sparse"``: for structures too large for dense matrices, only ``n_bands`` levels at each k, half
below and half above a centre energy: the stored/given Fermi level, else the one ``fermi.gamma_filling``
finds (mid-gap for an insulator). Band indices come from the inertia of H − σS
(``deeph_eval.solvers.shift_invert``), so the VBM/CBM are still identified from the electron count.
``solver="matrix-free"``: the same levels without a factorization (``deeph_eval.solvers.matrix_free``; memory
linear in the number of atoms), around the Γ mid-gap (or E_F of a metal) that ``fermi.gamma_filling`` finds,
never the stored E_F: for an insulator that is the VBM, and centred on a band edge the Krylov method needs about
twice the solves to reach the levels across the gap (docs/evaluation.md). Band indices assume N_e/2 levels
below the centre at every k (exact for an insulator with the centre in its gap; for a metal, columns near E_F
may belong to different bands at different k).
Energies are returned as an (n_k, n_cols) array where column c is band ``band_offset + c`` (NaN where
the sparse solver did not reach that band at that k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.deeph_format import DeepHStructure
from data_prep.kspace import mesh_size

from . import progress
from .blocklist import BlockList
from .checks import checked_pair
from .electrons import DEFAULT_SMEARING, GAP_TOL, Filling, filling
from .fermi import gamma_filling, occupied_levels
from .kpath import DEFAULT_VACUUM, KPath, band_path, periodic_directions, uniform_mesh
from .solvers import EigenError, SparseBloch, auto_solver, bloch_pair, dense_eigvals, nearby_levels, sparse_levels_near

MATRIX_FREE_INDICES = ("assumed: N_e/2 levels below the centre energy at every k (no inertia count without a "
                       "factorization); exact for an insulator whose gap holds the centre")


@dataclass
class BandResult:
    kpath: KPath
    energies: np.ndarray  # (n_k, n_cols) eV, absolute
    band_offset: int
    filling: Filling
    solver: str
    centre: float | None = None  # eV; sparse solvers: the energy the levels were sought around

    def to_json(self) -> dict:
        return {
            **self.kpath.to_json(),
            "energies_eV": np.where(np.isfinite(self.energies), self.energies, None).tolist(),
            "band_offset": self.band_offset,
            "fermi_level_eV": self.filling.fermi_level,
            "filling": self.filling.to_json(),
            "solver": self.solver,
            **({"centre_eV": self.centre} if self.centre is not None else {}),
            **({"band_indices": MATRIX_FREE_INDICES} if self.solver == "matrix-free" else {}),
        }


def compute_bands(
    st: DeepHStructure, n_electrons: float, *, kpath: KPath | None = None, npoints: int = 120,
    path: str | None = None, kspacing: float = 0.2, smearing: float = DEFAULT_SMEARING, solver: str = "auto",
    n_bands: int = 16, centre: float | None = None, vacuum: float = DEFAULT_VACUUM,
) -> BandResult:
    where = st.source or "structure"
    h, s = checked_pair(st)
    n_orb = st.n_orbitals()
    if kpath is None:
        kpath = band_path(st.cell, st.positions, st.pbc, npoints=npoints, path=path, vacuum=vacuum)
    if solver == "auto":
        solver = auto_solver(int(n_orb.sum()))
    if solver == "dense":
        periodic = periodic_directions(st.cell, st.positions, st.pbc, vacuum)
        mesh, weights = uniform_mesh(mesh_size(st.cell, periodic, kspacing))
        with progress.step(f"dense solver: {int(n_orb.sum())} orbitals, {len(kpath.kpts)} path + {len(mesh)} mesh k-points"):
            bands = dense_eigvals(h, s, n_orb, kpath.kpts, where=where)
            mesh_eigs = dense_eigvals(h, s, n_orb, mesh, where=where)
        fill = filling(mesh_eigs, mesh, weights, n_electrons, smearing=smearing, extra_eigs=bands,
                       extra_kpts=kpath.kpts, where=where)
        return BandResult(kpath, bands, 0, fill, "dense")
    if solver not in ("sparse", "matrix-free"):
        raise ValueError(f"solver must be 'auto', 'dense', 'sparse' or 'matrix-free', got {solver!r}")
    sh = SparseBloch(BlockList.from_blocks(h, n_orb))
    ss = None if s is None else SparseBloch(BlockList.from_blocks(s, n_orb))
    if centre is None and solver == "sparse":
        centre = st.fermi_level
    gamma = None
    progress.say(f"{solver} solver: {sh.dim} orbitals, {n_bands} levels per k-point, {len(kpath.kpts)} k-points")
    if centre is None:  # find it at Γ: KPM-guided inertia search, or the KPM estimate (matrix-free)
        with progress.step(f"E_F and gap at Γ from {n_electrons:g} electrons"):
            fill, gamma = gamma_filling(sh, ss, n_electrons, n_levels=n_bands, solver=solver, where=where)
        if solver == "matrix-free" and not fill.is_metal:
            centre = 0.5 * (fill.vbm + fill.cbm)
        else:
            centre = gamma.sigma if gamma is not None else fill.fermi_level

    def levels_at(n, k):
        if gamma is not None and _is_gamma(k):
            return gamma
        with progress.step(f"k-point {n + 1}/{len(kpath.kpts)} ({k[0]:.4f}, {k[1]:.4f}, {k[2]:.4f})"):
            if solver == "sparse":
                return sparse_levels_near(sh, ss, k, centre, n_bands, both_sides=True, where=where)
            return nearby_levels(*bloch_pair(sh, ss, k), sh.n_orb, centre, n_bands, occupied_levels(n_electrons),
                                 where=f"{where} k={k}")

    levels = [levels_at(n, k) for n, k in enumerate(kpath.kpts)]
    return _sparse_result(kpath, levels, n_electrons, centre, where, solver)


def _is_gamma(k) -> bool:
    return bool(np.allclose(k, np.round(k), atol=1e-9))


def _sparse_result(kpath, levels, n_electrons, centre, where, solver) -> BandResult:
    if any(lv.first_index is None for lv in levels):
        raise EigenError(f"{where}: the sparse factorization gave no inertia; band indices unknown")
    lo = min(lv.first_index for lv in levels)
    hi = max(lv.first_index + len(lv.energies) for lv in levels)
    energies = np.full((len(levels), hi - lo), np.nan)
    for n, lv in enumerate(levels):
        energies[n, lv.first_index - lo : lv.first_index - lo + len(lv.energies)] = lv.energies
    n_occ = n_electrons / 2.0
    fill = Filling(fermi_level=float(centre), is_metal=True, n_electrons=n_electrons)
    if abs(n_occ - round(n_occ)) < 1e-8 and lo < round(n_occ) < hi:
        v = energies[:, int(round(n_occ)) - 1 - lo]
        c = energies[:, int(round(n_occ)) - lo]
        if np.all(np.isfinite(v)) and np.all(np.isfinite(c)) and c.min() - v.max() > GAP_TOL:
            iv, ic = int(np.argmax(v)), int(np.argmin(c))
            fill = Filling(
                fermi_level=float(v[iv]), is_metal=False, n_electrons=n_electrons, vbm=float(v[iv]),
                cbm=float(c[ic]), gap=float(c[ic] - v[iv]), direct_gap=float((c - v).min()),
                is_direct=bool(iv == ic or (c - v).min() - (c[ic] - v[iv]) < GAP_TOL),
                vbm_kpt=kpath.kpts[iv].tolist(), cbm_kpt=kpath.kpts[ic].tolist(),
            )
    return BandResult(kpath, energies, lo, fill, solver, float(centre))


def common_bands(a: BandResult, b: BandResult) -> tuple[np.ndarray, np.ndarray]:
    """The two energy arrays restricted to the band indices both computed."""
    lo = max(a.band_offset, b.band_offset)
    hi = min(a.band_offset + a.energies.shape[1], b.band_offset + b.energies.shape[1])
    if hi <= lo:
        raise ValueError("the two band structures share no band index")
    return (a.energies[:, lo - a.band_offset : hi - a.band_offset], b.energies[:, lo - b.band_offset : hi - b.band_offset])
