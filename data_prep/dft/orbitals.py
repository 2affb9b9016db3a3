"""PySCF atomic-orbital order -> DeepH/OpenMX order (see ``data_prep.basis`` for the OpenMX order).

PySCF's real spherical functions are ordered p = (px, py, pz) and, for l >= 2, m = -l..l with PySCF's own
real combinations. The map is derived numerically: evaluate a one-shell PySCF atom on the unit sphere and
fit the OpenMX polynomials. The result must be a signed permutation; anything else is an error.
"""

from __future__ import annotations

import functools

import numpy as np

from ..basis import LMAX_SUPPORTED, _openmx_polynomials


@functools.lru_cache(maxsize=None)
def pyscf_to_openmx(l: int) -> np.ndarray:
    """Orthogonal (2l+1, 2l+1) T_l with Y_openmx = T_l · Y_pyscf; blocks convert as T_l1 · M · T_l2ᵀ."""
    from pyscf import gto

    if not 0 <= l <= LMAX_SUPPORTED:
        raise ValueError(f"orbital shells with l={l} are not supported (max l={LMAX_SUPPORTED})")
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(64, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    mol = gto.M(atom=[["He", (0.0, 0.0, 0.0)]], basis={"He": [[l, [1.0, 1.0]]]}, unit="Bohr", verbose=0)
    y_pyscf = mol.eval_gto("GTOval_sph", pts)  # (n, 2l+1); radial factor is constant on the unit sphere
    y_omx = _openmx_polynomials(l, pts)
    y_omx = y_omx / np.linalg.norm(y_omx, axis=0)
    y_pyscf = y_pyscf / np.linalg.norm(y_pyscf, axis=0)
    a, *_ = np.linalg.lstsq(y_pyscf, y_omx, rcond=None)  # y_omx = y_pyscf @ a
    t = a.T
    if not np.allclose(y_pyscf @ a, y_omx, atol=1e-10):
        raise AssertionError(f"l={l}: PySCF real harmonics do not span the OpenMX ones")
    t[np.abs(t) < 1e-10] = 0.0
    if not (np.allclose(np.abs(t).sum(axis=1), 1.0) and np.allclose(t @ t.T, np.eye(2 * l + 1))):
        raise AssertionError(f"l={l}: PySCF -> OpenMX map is not a signed permutation:\n{t}")
    t = np.round(t)
    t.setflags(write=False)
    return t


def cell_shells(cell) -> list[list[int]]:
    """Per atom, the l of each shell in PySCF's AO order (a shell with n contractions counts n times)."""
    out: list[list[int]] = [[] for _ in range(cell.natm)]
    for b in range(cell.nbas):
        out[cell.bas_atom(b)] += [int(cell.bas_angular(b))] * int(cell.bas_nctr(b))
    return out


def ao_transform(shells_per_atom: list[list[int]]) -> np.ndarray:
    """Block-diagonal orthogonal T over all AOs: M_openmx = T · M_pyscf · Tᵀ (AOs grouped by atom)."""
    blocks = [pyscf_to_openmx(l) for shells in shells_per_atom for l in shells]
    n = sum(b.shape[0] for b in blocks)
    t = np.zeros((n, n))
    start = 0
    for b in blocks:
        k = b.shape[0]
        t[start : start + k, start : start + k] = b
        start += k
    return t
