"""Compact shipping form of a DFT dataset: H(R) in float32, S(R) dropped and recomputed exactly on extraction.

A shipped structure folder is a DeepH folder without ``overlaps.h5`` whose ``hamiltonians.h5`` holds float32
blocks and whose ``info.json`` says so under ``"shipping"``. ``restore`` turns it back into a complete DeepH
folder: the overlaps are two-centre integrals of the recorded basis on the pairs of the stored Hamiltonian,
the same integrals the DFT run stored (``data_prep.dft.realspace.exact_overlap_blocks``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deeph_format import DeepHStructure, read_deeph, write_deeph

FLOAT32_BAND_TOLERANCE_MEV = 0.1  # largest band change allowed by storing H in float32
N_CHECK_KPOINTS = 4


def _atoms(st: DeepHStructure):
    from ase import Atoms

    return Atoms(numbers=st.numbers, positions=st.positions, cell=st.cell, pbc=True)


def exact_overlaps(st: DeepHStructure) -> dict:
    """S_ij(R) of the recorded basis on exactly the pairs of ``st.hamiltonians``."""
    from ..dft.realspace import exact_overlap_blocks
    from ..dft.settings import DFTSettings
    from ..dft.structure import build_cell

    recipe = st.info.get("dft") or {}
    if "basis" not in recipe:
        raise ValueError(f"{st.source}: info.json records no DFT basis; overlaps cannot be recomputed")
    settings = DFTSettings(basis=recipe["basis"], pseudo=recipe.get("pseudo", "gth-pbe"))
    pairs = np.array(sorted(st.hamiltonians), dtype=np.int64)
    return exact_overlap_blocks(build_cell(_atoms(st), settings, st.source or "structure"), pairs)


def float32_band_change_mev(st: DeepHStructure, kpts: np.ndarray, window: float = 2.0) -> float:
    """Largest change (meV) of band energies at ``kpts`` within ``window`` of the band edges when H is rounded
    to float32."""
    from ..dft.fidelity import edge_window
    from ..kspace import band_energies

    n_orb = st.n_orbitals()
    h32 = {k: v.astype(np.float32).astype(np.float64) for k, v in st.hamiltonians.items()}
    e64 = band_energies(st.hamiltonians, st.overlaps, n_orb, kpts)
    e32 = band_energies(h32, st.overlaps, n_orb, kpts)
    ef = st.fermi_level if st.fermi_level is not None else 0.0
    sel = edge_window(e64, ef, window)
    return float(np.abs(e32 - e64)[sel].max(initial=0.0) * 1000.0)


def check_kpoints(st: DeepHStructure) -> tuple[np.ndarray, float]:
    """(k-points for the float32 check, smallest eigenvalue of S(k) over the check mesh and those k-points).

    The ``N_CHECK_KPOINTS`` random ones where S(k) is positive definite at all of them; else as many of the mesh's
    k-points where it is, spread over them. None at all: the stored blocks have no spectrum, and the structure is
    not shipped."""
    from ..kspace import overlap_check_kpoints, overlap_floor

    random_k = np.random.default_rng(0).random((N_CHECK_KPOINTS, 3))
    mesh = overlap_check_kpoints(st.cell)
    floor_mesh = overlap_floor(st.overlaps, st.n_orbitals(), mesh)
    floor_random = overlap_floor(st.overlaps, st.n_orbitals(), random_k)
    floor = float(min(floor_mesh.min(), floor_random.min()))
    if floor_random.min() > 0:
        return random_k, floor
    good = mesh[floor_mesh > 0]
    if not len(good):
        raise ValueError(f"{st.source}: S(k) of the stored blocks is not positive definite at any k-point of the "
                         f"check mesh (smallest eigenvalue {floor:.3g}); the basis is near linear dependence or its "
                         "overlaps are truncated, so bands cannot be computed")
    return good[np.linspace(0, len(good) - 1, min(N_CHECK_KPOINTS, len(good))).astype(int)], floor


def compact(folder: Path, out: Path, catalogue: dict | None = None) -> dict:
    """Write the shipping form of a DFT DeepH folder; returns what was measured on the way.

    ``catalogue``: the structure's catalogue record, kept in info.json (``data_prep.splits`` reads it)."""
    st = read_deeph(folder)
    kpts, s_floor = check_kpoints(st)
    change = float32_band_change_mev(st, kpts)
    if change > FLOAT32_BAND_TOLERANCE_MEV:
        raise ValueError(f"{folder}: float32 H changes bands by {change:.3g} meV (> {FLOAT32_BAND_TOLERANCE_MEV})")
    recomputed = exact_overlaps(st)
    if set(recomputed) != set(st.overlaps):
        raise ValueError(f"{folder}: recomputed overlaps are on other pairs than the stored ones")
    s_dev = max(float(np.abs(recomputed[k] - st.overlaps[k]).max()) for k in recomputed)
    if s_dev > 1e-10:
        raise ValueError(f"{folder}: recomputed overlaps differ from the stored ones by {s_dev:.3g}")
    measured = {"float32_band_change_meV": round(change, 6), "overlap_recompute_max_dev": s_dev,
                "overlap_min_eigenvalue": round(s_floor, 6)}
    st.hamiltonians = {k: v.astype(np.float32) for k, v in st.hamiltonians.items()}
    st.overlaps = None
    st.info = {**st.info, "shipping": {"hamiltonian_dtype": "float32", "overlaps": "recomputed", **measured}}
    if catalogue is not None:
        st.info["catalogue"] = catalogue
    write_deeph(st, out)
    return measured


def restore(folder: Path, out: Path) -> Path:
    """A complete DeepH folder (float64 H, exact S) from a shipped one."""
    st = read_deeph(folder, overlap=False)
    st.hamiltonians = {k: v.astype(np.float64) for k, v in st.hamiltonians.items()}
    st.overlaps = exact_overlaps(st)
    return write_deeph(st, out)
