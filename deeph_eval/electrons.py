"""Electron filling: Fermi level, metal vs insulator, VBM/CBM and gap from band energies.

Spin-degenerate bands (2 electrons per band). Conventions, used everywhere in deeph_eval:
* insulator (N_e/2 integer and the lowest unoccupied band lies above the highest occupied one at every
  sampled k by more than ``GAP_TOL``): the Fermi level is placed at the **VBM** (top of band N_e/2);
* otherwise metal: E_F solves Σ_k w_k Σ_n 2·½erfc((ε_nk − E_F)/σ) = N_e (Gaussian smearing σ) on a uniform mesh.
The gap is reported as indirect (CBM − VBM over all sampled k) and direct (min over k of ε_c(k) − ε_v(k)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import erfc

GAP_TOL = 1e-3  # eV
DEFAULT_SMEARING = 0.05  # eV


class ElectronCountError(ValueError):
    pass


INFO_KEYS = ("n_electrons", "nelectron", "num_electrons")


def resolve_n_electrons(explicit: float | None, info: dict, numbers, where: str) -> float:
    """Valence electron count: ``--n-electrons`` first, then info.json, then the DFT runner's table."""
    if explicit is not None:
        n = float(explicit)
    else:
        n = next((float(info[k]) for k in INFO_KEYS if info.get(k) is not None), None)
        if n is None:
            try:
                from data_prep.dft import valence_electrons  # provided by the DFT runner
            except ImportError:
                valence_electrons = None
            if valence_electrons is None:
                raise ElectronCountError(
                    f"{where}: the number of valence electrons is unknown (info.json has none of "
                    f"{', '.join(INFO_KEYS)}); pass --n-electrons"
                )
            from ase import Atoms

            n = float(valence_electrons(Atoms(numbers=np.asarray(numbers, dtype=int))))
    if not n > 0:
        raise ElectronCountError(f"{where}: number of electrons must be positive, got {n}")
    return n


@dataclass
class Filling:
    fermi_level: float  # eV
    is_metal: bool
    n_electrons: float
    vbm: float | None = None
    cbm: float | None = None
    gap: float | None = None  # indirect (fundamental) gap, eV
    direct_gap: float | None = None
    is_direct: bool | None = None
    vbm_kpt: list | None = None
    cbm_kpt: list | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _occupied_count(n_electrons: float, n_bands: int, where: str) -> float:
    n_occ = n_electrons / 2.0
    if n_occ > n_bands:
        raise ElectronCountError(
            f"{where}: {n_electrons:g} electrons need {n_occ:g} bands but the basis has only {n_bands}"
        )
    return n_occ


def smeared_fermi_level(eigs, weights, n_electrons: float, smearing: float = DEFAULT_SMEARING) -> float:
    eigs = np.asarray(eigs)
    w = np.asarray(weights)[:, None]

    def count(ef):
        return float(np.sum(w * erfc((eigs - ef) / smearing)))  # 2 · ½erfc per band

    lo, hi = eigs.min() - 10 * smearing, eigs.max() + 10 * smearing
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if count(mid) < n_electrons:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    return 0.5 * (lo + hi)


def filling(eigs, kpts, weights, n_electrons: float, *, smearing: float = DEFAULT_SMEARING,
            extra_eigs=None, extra_kpts=None, where: str = "") -> Filling:
    """Fermi level from the weighted mesh ``eigs`` (n_k, n_b); band edges also over ``extra_*`` (e.g. a path)."""
    eigs = np.asarray(eigs)
    n_occ = _occupied_count(n_electrons, eigs.shape[1], where)
    all_eigs, all_k = eigs, np.asarray(kpts)
    if extra_eigs is not None:
        all_eigs = np.concatenate([eigs, np.asarray(extra_eigs)])
        all_k = np.concatenate([all_k, np.asarray(extra_kpts)])
    if abs(n_occ - round(n_occ)) < 1e-8 and 0 < round(n_occ) < eigs.shape[1]:
        v, c = all_eigs[:, int(round(n_occ)) - 1], all_eigs[:, int(round(n_occ))]
        iv, ic = int(np.argmax(v)), int(np.argmin(c))
        gap = float(c[ic] - v[iv])
        if gap > GAP_TOL:
            direct = c - v
            return Filling(
                fermi_level=float(v[iv]), is_metal=False, n_electrons=n_electrons, vbm=float(v[iv]),
                cbm=float(c[ic]), gap=gap, direct_gap=float(direct.min()),
                is_direct=bool(np.allclose(all_k[iv], all_k[ic]) or direct.min() - gap < GAP_TOL),
                vbm_kpt=all_k[iv].tolist(), cbm_kpt=all_k[ic].tolist(),
            )
    return Filling(fermi_level=smeared_fermi_level(eigs, weights, n_electrons, smearing), is_metal=True,
                   n_electrons=n_electrons)
