"""Density of states with Gaussian smearing (states / eV / cell, spin included): on a uniform k-mesh from all
bands, or at Γ by the kernel polynomial method for large cells (``structure_dos`` picks by size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.deeph_format import DeepHStructure
from data_prep.kspace import mesh_size

from .blocklist import BlockList
from .checks import checked_pair
from .electrons import DEFAULT_SMEARING, Filling, filling
from .kpath import periodic_directions, uniform_mesh
from .solvers import (
    DENSE_MAX_ORBITALS,
    SparseBloch,
    bloch_pair,
    dense_eigvals,
    kpm_dos,
    kpm_moments,
    level_count,
    moments_for_broadening,
    spectral_bounds,
)


def gaussian_dos(eigs, weights, energies, sigma: float, spin_factor: float = 2.0) -> np.ndarray:
    eigs = np.asarray(eigs, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float)[:, None], eigs.shape).ravel()
    e = eigs.ravel()
    energies = np.asarray(energies, dtype=float)
    out = np.zeros_like(energies)
    norm = spin_factor / (sigma * np.sqrt(2 * np.pi))
    for start in range(0, len(e), 4096):  # (chunk, n_E) at a time
        d = (energies[None, :] - e[start : start + 4096, None]) / sigma
        out += norm * (w[start : start + 4096, None] * np.exp(-0.5 * d * d)).sum(axis=0)
    return out


def integrated_dos(energies, dos) -> np.ndarray:
    """Electrons per cell below each energy (trapezoid rule)."""
    de = np.diff(energies)
    return np.concatenate([[0.0], np.cumsum(0.5 * (dos[1:] + dos[:-1]) * de)])


@dataclass
class DosResult:
    energies: np.ndarray  # eV, absolute
    dos: np.ndarray  # states / eV / cell, spin included
    fermi_level: float
    filling: Filling | None  # k-mesh DOS: the bands' filling; KPM: None (the Fermi level is an estimate)
    meta: dict  # solver, mesh, and for KPM n_moments, n_vectors, spectrum_eV, stochastic_error_levels


def mesh_dos(st: DeepHStructure, n_electrons: float, *, kspacing: float = 0.1, sigma: float = 0.1,
             emin: float = -10.0, emax: float = 6.0, npts: int = 1601,
             smearing: float = DEFAULT_SMEARING) -> DosResult:
    """DOS from all bands on a Γ-centred mesh of spacing ``kspacing`` (1/Å), on E_F + [emin, emax]."""
    h, s = checked_pair(st)
    periodic = periodic_directions(st.cell, st.positions, st.pbc)
    size = mesh_size(st.cell, periodic, kspacing)
    kpts, w = uniform_mesh(size)
    eigs = dense_eigvals(h, s, st.n_orbitals(), kpts, where=st.source)
    fill = filling(eigs, kpts, w, n_electrons, smearing=smearing, where=st.source)
    energies = fill.fermi_level + np.linspace(emin, emax, npts)
    return DosResult(energies, gaussian_dos(eigs, w, energies, sigma), fill.fermi_level, fill,
                     {"solver": "dense", "mesh": size.tolist(), "filling": fill.to_json()})


def kpm_structure_dos(st: DeepHStructure, n_electrons: float, *, sigma: float = 0.1, emin: float = -10.0,
                      emax: float = 6.0, npts: int = 1601, n_vectors: int = 8) -> DosResult:
    """Γ-point DOS of a large cell (a supercell) by the kernel polynomial method: time and memory linear in N."""
    h, s = checked_pair(st)
    n_orb = st.n_orbitals()
    sh = SparseBloch(BlockList.from_blocks(h, n_orb))
    ss = None if s is None else SparseBloch(BlockList.from_blocks(s, n_orb))
    hk, sk = bloch_pair(sh, ss, np.zeros(3))
    lo, hi = spectral_bounds(hk, sk)
    n_moments = moments_for_broadening(0.5 * (hi - lo), sigma)
    moments = kpm_moments(hk, sk, n_orb, n_moments, n_vectors=n_vectors, bounds=(lo, hi), where=st.source)
    count = level_count(moments)
    ef = count.fermi_estimate(n_electrons)
    energies = ef + np.linspace(emin, emax, npts)
    meta = {"solver": "kpm", "mesh": [1, 1, 1], "n_moments": n_moments, "n_vectors": n_vectors,
            "spectrum_eV": [lo, hi], "stochastic_error_levels": count.noise}
    return DosResult(energies, kpm_dos(moments, energies, sigma), ef, None, meta)


def structure_dos(st: DeepHStructure, n_electrons: float, *, solver: str = "auto", kspacing: float = 0.1,
                  sigma: float = 0.1, emin: float = -10.0, emax: float = 6.0, npts: int = 1601,
                  smearing: float = DEFAULT_SMEARING, n_vectors: int = 8) -> DosResult:
    """``solver``: "dense" (k-mesh), "kpm" (Γ), or "auto" (KPM above ``DENSE_MAX_ORBITALS`` orbitals)."""
    if solver == "auto":
        solver = "dense" if st.n_orbitals().sum() <= DENSE_MAX_ORBITALS else "kpm"
    window = {"sigma": sigma, "emin": emin, "emax": emax, "npts": npts}
    if solver == "dense":
        return mesh_dos(st, n_electrons, kspacing=kspacing, smearing=smearing, **window)
    if solver == "kpm":
        return kpm_structure_dos(st, n_electrons, n_vectors=n_vectors, **window)
    raise ValueError(f"DOS solver must be auto, dense or kpm, got {solver!r}")
