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
    recipe.setdefault("ke_cutoff_d", None)  # written before the setting existed: one grid for every cell
    return DFTSettings.from_dict({k: v for k, v in recipe.items() if k in fields})


def atoms_of(st: DeepHStructure):
    from ase import Atoms

    return Atoms(numbers=st.numbers, positions=st.positions, cell=st.cell, pbc=True)


def off_mesh_kpoints(n: int, seed: int = 0) -> np.ndarray:
    """Random fractional k-points: off any Γ-centred mesh with probability one."""
    return np.random.default_rng(seed).random((n, 3))


def edge_window(ref: np.ndarray, fermi: float, window: float) -> np.ndarray:
    """Mask of the band energies within ``window`` eV of the band edges: [VBM − window, CBM + window], with VBM
    (CBM) the highest (lowest) energy below (above) E_F over the k-points. For a metal that is about E_F ± window; an
    insulator's gap counts as zero width, so bands are compared even where the gap is wider than 2 x window."""
    below, above = ref[ref <= fermi], ref[ref > fermi]
    lo = (below.max() if below.size else fermi) - window
    hi = (above.min() if above.size else fermi) + window
    return (ref >= lo) & (ref <= hi)


def band_fidelity(st: DeepHStructure, *, mf=None, kpts_frac=None, n_kpts: int = 6, window: float = 5.0,
                  seed: int = 0) -> dict:
    """Compare bands from the blocks with PySCF's bands at off-mesh k (meV), for bands within ``window`` eV of
    the band edges (``edge_window``).

    ``mf``: a converged PySCF mean field for this structure; if None the SCF is redone from info.json.
    """
    from .runner import pyscf_band_energies, run_scf

    if mf is None:
        mf, _ = run_scf(atoms_of(st), settings_from_info(st), st.source or "structure")
    kpts = off_mesh_kpoints(n_kpts, seed) if kpts_frac is None else np.atleast_2d(kpts_frac)
    ref = pyscf_band_energies(mf, kpts)
    ours = band_energies_from_blocks(st, kpts)
    ef = st.fermi_level if st.fermi_level is not None else 0.0
    err = np.abs(ours - ref)[edge_window(ref, ef, window)] * 1000.0
    return {
        "max_mev": float(err.max(initial=0.0)),
        "mean_mev": float(err.mean()) if err.size else 0.0,
        "n_values": int(err.size),
        "n_kpts": int(len(kpts)),
        "window_ev": float(window),
        "empty_bands": bool((ref > ef).any()),
        "radius": st.info.get("radius"),
    }
