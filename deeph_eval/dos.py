"""Density of states with Gaussian smearing on a weighted k-mesh (states / eV / cell, spin included)."""

from __future__ import annotations

import numpy as np


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
