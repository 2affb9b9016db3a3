"""Half of a k-mesh is enough: with real orbitals and no spin-orbit coupling every matrix at -k is the complex
conjugate of the one at k (time reversal), and so is the density matrix, while the densities they make are equal.

``half_mesh_multigrid`` uses this inside the SCF: PySCF's multigrid evaluates the orbitals on the real-space grid
at every k-point of the mesh in every cycle (the steep semicore functions of the d-shell elements on the finest
grid dominate the cost), although the density from k and from -k is the same function. It computes the density,
the potential matrices and the pseudopotential at one of each pair and conjugates for the other, as the dense
mesh step (``runner.fock_on_mesh``) always did. The k-points the SCF diagonalises are unchanged.

Exact in theory; in practice PySCF's grid matrices at k and at the mesh's equivalent point -k + G differ by the
grid's integration error, so the two SCFs differ by that much (``bench/scf_half_mesh.py``, docs/data.md).
"""

from __future__ import annotations

import numpy as np

_DIGITS = 9


def time_reversal_partners(kpts_frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(computed, source): the k-points to compute, and for every k-point the index (into ``computed``) of
    the one it equals, or ``-1 - index`` of the one it is the time-reversed image of (-k modulo a reciprocal
    lattice vector)."""
    key = {tuple(np.round(np.mod(k, 1.0), _DIGITS) % 1.0): i for i, k in enumerate(kpts_frac)}
    computed, source = [], np.empty(len(kpts_frac), dtype=np.int64)
    where = {}
    for i, k in enumerate(kpts_frac):
        partner = key.get(tuple(np.round(np.mod(-k, 1.0), _DIGITS) % 1.0))
        if partner is not None and partner in where:
            source[i] = -1 - where[partner]
            continue
        where[i] = len(computed)
        source[i] = len(computed)
        computed.append(i)
    return np.asarray(computed, dtype=np.int64), source


def expand(values: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Values at every k-point (axis 0) from those at the computed ones (``time_reversal_partners``)."""
    return np.stack([values[s] if s >= 0 else values[-1 - s].conj() for s in source])


def multiplicity(source: np.ndarray, n_computed: int) -> np.ndarray:
    """How many k-points of the mesh each computed one stands for (1 or 2)."""
    return np.bincount(np.where(source >= 0, source, -1 - source), minlength=n_computed).astype(float)


def half_mesh_multigrid(cell):
    """PySCF's ``MultiGridNumInt`` for ``cell`` with the grid work done on half of the k-mesh."""
    from pyscf.pbc.dft.multigrid import MultiGridNumInt

    class HalfMeshMultiGrid(MultiGridNumInt):
        def _pairs(self, kpts):
            if kpts is None or not isinstance(kpts, np.ndarray):  # Γ only, or PySCF's symmetry-adapted KPoints
                return None
            kpts = np.asarray(kpts).reshape(-1, 3)
            computed, source = time_reversal_partners(self.cell.get_scaled_kpts(kpts))
            return None if len(computed) == len(kpts) else (kpts, computed, source)

        def nr_rks(self, cell, grids, xc_code, dm_kpts, relativity=0, hermi=1, kpts=None, kpts_band=None,
                   max_memory=2000, verbose=None):
            pairs = self._pairs(kpts) if hermi == 1 else None
            if pairs is None:
                return super().nr_rks(cell, grids, xc_code, dm_kpts, relativity, hermi, kpts, kpts_band,
                                      max_memory, verbose)
            kpts, computed, source = pairs
            dm = np.asarray(dm_kpts)
            # PySCF averages the density over the k-points it is given: weight each kept k-point by the number
            # of mesh points it stands for, so the average is over the whole mesh
            scale = multiplicity(source, len(computed)) * len(computed) / len(kpts)
            dm_half = dm[..., computed, :, :] * scale[:, None, None]
            band = kpts[computed] if kpts_band is None else kpts_band
            n, exc, v = super().nr_rks(cell, grids, xc_code, dm_half, relativity, hermi, kpts[computed], band,
                                       max_memory, verbose)
            if kpts_band is not None:
                return n, exc, v
            from pyscf import lib

            full = np.moveaxis(expand(np.moveaxis(np.asarray(v), -3, 0), source), 0, -3)
            return n, exc, lib.tag_array(full, ecoul=v.ecoul, exc=v.exc, vj=v.vj, vk=v.vk)

        def get_pp(self, kpts=None, max_memory=4000):
            pairs = self._pairs(kpts)
            if pairs is None:
                return super().get_pp(kpts, max_memory)
            kpts, computed, source = pairs
            return expand(np.asarray(super().get_pp(kpts[computed], max_memory)), source)

    return HalfMeshMultiGrid(cell)
