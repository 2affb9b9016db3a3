"""Fidelity of stored blocks: bands from H(R), S(R) at k-points off every mesh vs PySCF's own bands there."""

from __future__ import annotations

import numpy as np

from ..deeph_format import DeepHStructure
from ..kspace import band_energies
from .settings import DFTSettings


def band_energies_from_blocks(st: DeepHStructure, kpts_frac) -> np.ndarray:
    """Band energies (n_k, n_orb) in eV from the structure's H(R), S(R) blocks."""
    if st.hamiltonians is None:
        raise ValueError(f"{st.source or 'structure'}: no Hamiltonian blocks")
    return band_energies(st.hamiltonians, None if st.isorthogonal else st.overlaps, st.n_orbitals(), kpts_frac)


def settings_from_info(st: DeepHStructure) -> DFTSettings:
    """The recipe recorded in info.json (with its resolved k-meshes), to redo the SCF."""
    recipe = dict(st.info.get("dft") or {})
    if not recipe:
        raise ValueError(f"{st.source or 'structure'}: info.json has no 'dft' recipe (not written by deeph-prep dft)")
    fields = set(DFTSettings.__dataclass_fields__)
    return DFTSettings.from_dict({k: v for k, v in recipe.items() if k in fields})


def atoms_of(st: DeepHStructure):
    from ase import Atoms

    return Atoms(numbers=st.numbers, positions=st.positions, cell=st.cell, pbc=True)


def off_mesh_kpoints(n: int, seed: int = 0) -> np.ndarray:
    """Random fractional k-points: off any Γ-centred mesh with probability one."""
    return np.random.default_rng(seed).random((n, 3))


def band_fidelity(st: DeepHStructure, *, mf=None, kpts_frac=None, n_kpts: int = 6, window: float = 5.0,
                  seed: int = 0) -> dict:
    """Compare bands from the blocks with PySCF's bands at off-mesh k (meV), for bands within E_F ± window eV.

    ``mf``: a converged PySCF mean field for this structure; if None the SCF is redone from info.json.
    """
    from .runner import pyscf_band_energies, run_scf

    if mf is None:
        mf, _ = run_scf(atoms_of(st), settings_from_info(st), st.source or "structure")
    kpts = off_mesh_kpoints(n_kpts, seed) if kpts_frac is None else np.atleast_2d(kpts_frac)
    ref = pyscf_band_energies(mf, kpts)
    ours = band_energies_from_blocks(st, kpts)
    ef = st.fermi_level if st.fermi_level is not None else 0.0
    sel = np.abs(ref - ef) <= window
    err = np.abs(ours - ref)[sel] * 1000.0
    return {
        "max_mev": float(err.max(initial=0.0)),
        "mean_mev": float(err.mean()) if err.size else 0.0,
        "n_values": int(err.size),
        "n_kpts": int(len(kpts)),
        "window_ev": float(window),
        "radius": st.info.get("radius"),
    }
