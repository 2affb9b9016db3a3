"""One structure -> converged PySCF periodic DFT -> DeepHStructure (H(R), S(R) in eV, OpenMX order).

Steps: SCF on the k-mesh from ``kspacing``; Fock matrix rebuilt non-self-consistently from the converged
density on a denser mesh sized so its Born-von Kármán supercell holds the storage radius alias-free;
inverse Bloch transform for H(R); exact two-centre integrals for S(R).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..deeph_format import DeepHStructure
from .orbitals import cell_shells
from .realspace import alias_free_radius, block_pairs, blocks_from_kmesh, exact_overlap_blocks
from .settings import DFTSettings, dense_kmesh_for_radius, kmesh_from_spacing
from .structure import build_cell, element_pseudo, valence_electrons
from .time_reversal import expand, half_mesh_multigrid, time_reversal_partners


class SCFNotConvergedError(RuntimeError):
    pass


def hartree_to_ev() -> float:
    from pyscf.data.nist import HARTREE2EV

    return float(HARTREE2EV)


@dataclass
class DFTResult:
    structure: DeepHStructure
    scf: object  # the converged PySCF mean-field object (k-point RKS)
    kmesh: tuple[int, int, int]
    dense_kmesh: tuple[int, int, int]
    timings: dict = field(default_factory=dict)


def fermi_level(mo_energies: list[np.ndarray], n_electrons: int, sigma: float) -> float:
    """Chemical potential (same units as the energies) of a spin-restricted k-mesh calculation.

    sigma > 0: Fermi-Dirac occupations summing to ``n_electrons`` per cell (bisection);
    sigma = 0: midpoint of the highest occupied and lowest empty level over the mesh.
    """
    e = np.sort(np.concatenate([np.asarray(x, dtype=float) for x in mo_energies]))
    nk = len(mo_energies)
    target = n_electrons * nk / 2.0  # states per spin over all k
    if sigma <= 0:
        n_occ = int(round(target))
        return float(0.5 * (e[n_occ - 1] + e[n_occ])) if n_occ < len(e) else float(e[-1])

    def count(mu):
        x = np.clip((e - mu) / sigma, -200, 200)
        return float(np.sum(1.0 / (1.0 + np.exp(x))))

    lo, hi = e[0] - 50 * sigma - 1.0, e[-1] + 50 * sigma + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return float(0.5 * (lo + hi))

DAMPED_START = (0.9, 25)  # (PySCF damp, diis_start_cycle): first fallback, Fock damping before DIIS starts
# Cycles of the first (plain DIIS) attempt: of the ~190 universal-mini structures that converged that way the
# slowest took 28, while the 3d compounds that need the damped start ran the full max_cycle before it
# (docs/data.md). The later attempts keep the recipe's max_cycle.
FIRST_ATTEMPT_CYCLES = 40
# Cells with an open-3d-shell element (Sc-Ni) start with the damped start itself: of 20 such cells in the
# universal-mini run of 2026-12-07, 19 needed a fallback after a failed plain attempt (CuSc converged plainly, as
# did the d10 Zn compound; docs/data.md).
DAMPED_FIRST_Z = range(21, 29)
WIDE_SMEARING_EV = 0.5  # second fallback: converge with this smearing first, then at the recipe's


def make_scf(cell, kpts, settings: DFTSettings):
    from pyscf.pbc import dft, scf

    mf = dft.KRKS(cell, kpts)
    mf.xc = settings.xc
    if settings.density_fit == "multigrid":
        mf = mf.multigrid_numint()
        mf._numint = half_mesh_multigrid(cell)
    elif settings.density_fit == "gdf":
        mf = mf.density_fit()
    if settings.smearing > 0:
        mf = scf.addons.smearing_(mf, sigma=settings.smearing / hartree_to_ev(), method="fermi")
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    mf.verbose = 0
    return mf


def initial_density(mf):
    """(density matrix, name) of the SCF start: PySCF's MINAO guess, or the core-Hamiltonian ("1e") guess where
    MINAO (and PySCF's atomic guess) has no occupation table for a GTH valence (Sc with q11: IndexError)."""
    try:
        return mf.get_init_guess(key="minao"), "minao"
    except IndexError:
        return mf.get_init_guess(key="1e"), "1e"


# An SCF whose density matrix still changes by more than this (PySCF's |ddm|, summed over k), as the median of
# the last DIVERGING_WINDOW cycles after DIVERGING_AFTER cycles, is swinging between states, not converging
# slowly: seen on 2D Cr/Fe dihalides and dichalcogenides, for hundreds of cycles, with or without damping, DIIS,
# wider smearing or another density fit. It is stopped there instead of running out of cycles.
DIVERGING_DDM, DIVERGING_AFTER, DIVERGING_WINDOW = 1.0, 30, 10


class _Diverging(Exception):
    pass


def is_diverging(ddm_history: list[float]) -> bool:
    recent = ddm_history[-DIVERGING_WINDOW:]
    return len(ddm_history) >= DIVERGING_AFTER and float(np.median(recent)) > DIVERGING_DDM


def checkpoint_partial(path: Path) -> Path:
    """Where a checkpoint is written before it replaces ``path`` (left behind only by a kill mid-write)."""
    return path.with_name(path.name + ".partial")


def save_checkpoint(path: Path, dm, kpts, damped_cycles_left: int) -> None:
    """The SCF's density after a cycle, replaced atomically (a run killed mid-write leaves the previous one)."""
    partial = checkpoint_partial(path)
    with open(partial, "wb") as f:
        np.savez(f, dm=np.asarray(dm), kpts=np.asarray(kpts), damped_cycles_left=damped_cycles_left)
    os.replace(partial, path)


def remove_checkpoint(path: Path) -> None:
    """The checkpoint and a write of it a kill cut short."""
    path.unlink(missing_ok=True)
    checkpoint_partial(path).unlink(missing_ok=True)


def load_checkpoint(path: Path | None, mf) -> tuple[np.ndarray, int] | None:
    """(density, damped cycles left) of an interrupted SCF of the same cell and k-mesh, else None."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            dm, kpts, left = z["dm"], z["kpts"], int(z["damped_cycles_left"])
    except (OSError, ValueError, KeyError):  # unreadable: start afresh
        return None
    expected = (len(mf.kpts), mf.cell.nao_nr(), mf.cell.nao_nr())
    if dm.shape != expected or not np.allclose(kpts, mf.kpts):
        return None
    return dm, left


def _kernel(mf, dm0, checkpoint: Path | None = None) -> bool:
    """Run the SCF from ``dm0``; False if it was stopped as diverging (``is_diverging``). With ``checkpoint``
    the density is saved after every cycle (``load_checkpoint`` resumes from it)."""
    history: list[float] = []

    def watch(envs):
        history.append(float(envs.get("norm_ddm", 0.0)))
        if checkpoint is not None:
            damped_left = max(0, mf.diis_start_cycle - envs["cycle"] - 1) if mf.damp else 0
            save_checkpoint(checkpoint, envs["dm"], mf.kpts, damped_left)
        if is_diverging(history):
            raise _Diverging

    mf.callback = watch
    try:
        mf.kernel(dm0=dm0)
    except _Diverging:
        mf.converged = False
        return False
    return True


def run_scf(atoms, settings: DFTSettings = DFTSettings(), where: str = "structure", checkpoint: Path | None = None):
    """Converged PySCF k-point RKS for ``atoms``; returns (mf, kmesh).

    ``checkpoint``: a file the density is saved to after every SCF cycle; an SCF interrupted (killed, timed out)
    resumes from it: from its damped phase with the damped cycles it had left, else with DIIS at once."""
    cell = build_cell(atoms, settings, where)
    kmesh = settings.kmesh or kmesh_from_spacing(atoms.cell[:], settings.kspacing)
    mf = make_scf(cell, cell.make_kpts(kmesh), settings)
    dm0, guess = initial_density(mf)
    damped_first = any(int(z) in DAMPED_FIRST_Z for z in atoms.numbers)
    start, damped_cycles = dm0, DAMPED_START[1] if damped_first else 0
    resumed = load_checkpoint(checkpoint, mf)
    if resumed is not None:
        start, damped_cycles = resumed
        guess = "checkpoint"
    if damped_cycles:
        mf.damp, mf.diis_start_cycle = DAMPED_START[0], damped_cycles
    else:
        mf.max_cycle = min(FIRST_ATTEMPT_CYCLES, settings.max_cycle)
    settled = _kernel(mf, start, checkpoint)
    fallback = None
    if not mf.converged and not damped_cycles:
        # Large charge transfer between a d metal and its anion (MnTe: ~6 electrons move between Mn 3d and Te 5p
        # from one cycle to the next, 100 eV apart in energy): DIIS extrapolates the swings. Damping the Fock
        # matrix hard at first lets the density settle near the answer before DIIS takes over.
        mf = make_scf(cell, cell.make_kpts(kmesh), settings)
        mf.damp, mf.diis_start_cycle = DAMPED_START
        settled = _kernel(mf, dm0, checkpoint)
        fallback = f"damped start (Fock damping {DAMPED_START[0]:g} for {DAMPED_START[1]} cycles)"
    if not mf.converged:
        # Charge sloshing in d-metals: occupations flip at the Fermi level from cycle to cycle. Converge with a
        # wider Fermi smearing first, then restart at the recipe's smearing (damped) from that density: what is
        # stored is still the recipe's own self-consistent solution.
        wide = replace(settings, smearing=max(5 * settings.smearing, WIDE_SMEARING_EV))
        start = mf.make_rdm1() if settled else dm0  # a diverged density is no start
        mf_wide = make_scf(cell, cell.make_kpts(kmesh), wide)
        if not _kernel(mf_wide, start, checkpoint):
            raise SCFNotConvergedError(
                f"{where}: SCF diverges (density still changing by > {DIVERGING_DDM:g} per cycle, median, after "
                f"{DIVERGING_AFTER} cycles, also with a damped start and with {wide.smearing:g} eV smearing; "
                f"k-mesh {kmesh})")
        mf = make_scf(cell, cell.make_kpts(kmesh), settings)
        mf.damp, mf.diis_start_cycle = 0.3, 2
        _kernel(mf, mf_wide.make_rdm1(), checkpoint)
        fallback = f"converged first with {wide.smearing:g} eV smearing"
    if not mf.converged:
        raise SCFNotConvergedError(f"{where}: SCF did not converge in {settings.max_cycle} cycles (k-mesh {kmesh})")
    mf.initial_guess, mf.scf_fallback = guess, fallback
    mf.scf_start = "damped (open 3d shell)" if damped_first else "plain DIIS"
    if resumed is not None:
        mf.scf_start = f"resumed from the checkpoint ({'damped' if damped_cycles else 'DIIS'})"
    return mf, tuple(int(n) for n in kmesh)


def fock_at(mf, kpts_abs: np.ndarray) -> np.ndarray:
    """Kohn-Sham matrices (n_k, nao, nao) at any k-points from the converged density (non-self-consistent)."""
    dm = mf.make_rdm1()
    fock = mf.get_hcore(mf.cell, kpts_abs) + mf.get_veff(mf.cell, dm, kpts=mf.kpts, kpts_band=kpts_abs)
    return np.asarray(fock)


def fock_on_mesh(mf, kpts_frac: np.ndarray) -> np.ndarray:
    """``fock_at`` on a k-mesh, computing one of each pair k, -k: with a real basis and no spin-orbit
    coupling H(-k) = H(k)* (time reversal), so half of a Γ-centred mesh gives all of it."""
    computed, source = time_reversal_partners(np.asarray(kpts_frac, dtype=float))
    return expand(fock_at(mf, mf.cell.get_abs_kpts(np.asarray(kpts_frac)[computed])), source)


def pyscf_band_energies(mf, kpts_frac) -> np.ndarray:
    """PySCF's own band energies (n_k, nao) in eV at fractional k-points."""
    kpts_abs = mf.cell.get_abs_kpts(np.atleast_2d(np.asarray(kpts_frac, dtype=float)))
    energies, _ = mf.get_bands(kpts_abs)
    return np.asarray(energies) * hartree_to_ev()


def run_dft(atoms, settings: DFTSettings = DFTSettings(), where: str = "structure",
            checkpoint: Path | None = None) -> DFTResult:
    """Full recipe for one structure (ASE Atoms) -> ``DFTResult`` (structure with H, S blocks in eV).
    ``checkpoint``: the SCF's restart file (``run_scf``); the caller removes it when done."""
    import pyscf
    from pyscf import lib

    if settings.threads:
        lib.num_threads(int(settings.threads))
    ev = hartree_to_ev()
    t0 = time.perf_counter()
    mf, kmesh = run_scf(atoms, settings, where, checkpoint)
    t_scf = time.perf_counter() - t0
    cell = mf.cell
    cell_rows = np.asarray(atoms.cell[:], dtype=float)
    positions = np.asarray(atoms.positions, dtype=float)
    n_el = valence_electrons(atoms, settings)
    mu = fermi_level(mf.mo_energy, n_el, settings.smearing / ev) * ev

    dense = settings.dense_kmesh or dense_kmesh_for_radius(cell_rows, settings.alias_radius or settings.radius)
    rho = alias_free_radius(cell_rows, dense)
    radius = min(settings.radius, rho * (1 - 1e-9))
    pairs = block_pairs(cell_rows, positions, radius)
    t1 = time.perf_counter()
    kd_frac = cell.get_scaled_kpts(cell.make_kpts(dense))
    fock = fock_on_mesh(mf, kd_frac) * ev
    h_blocks, max_imag = blocks_from_kmesh(cell, fock, kd_frac, pairs)
    t_dense = time.perf_counter() - t1
    t2 = time.perf_counter()
    s_blocks = exact_overlap_blocks(cell, pairs)
    t_ovlp = time.perf_counter() - t2

    symbols = sorted(set(atoms.get_chemical_symbols()))
    info = {
        "dft": {
            "code": f"pyscf {pyscf.__version__}",
            **settings.recipe(),
            "kmesh": list(kmesh),
            "dense_kmesh": list(dense),
            "pseudo_per_element": {s: element_pseudo(settings.pseudo, settings.basis, s)[0] for s in symbols},
        },
        "grid_ke_cutoff": None if cell.ke_cutoff is None else float(cell.ke_cutoff),  # Ha, the one this cell used
        "n_electrons": int(n_el),
        "radius": float(radius),
        "alias_free_radius": float(rho),
        "total_energy_ev": float(mf.e_tot * ev),
        "scf_cycles": int(getattr(mf, "cycles", -1)),
        "scf_fallback": getattr(mf, "scf_fallback", None),
        "scf_start": getattr(mf, "scf_start", None),
        "scf_initial_guess": getattr(mf, "initial_guess", "minao"),
        # grid work on one k-point of each pair k, -k (time_reversal.py); absent in data computed before
        "scf_time_reversal": type(mf._numint).__name__ == "HalfMeshMultiGrid",
        "max_imag_h_ev": max_imag,
        "timings_s": {"scf": round(t_scf, 3), "dense_fock": round(t_dense, 3), "overlap": round(t_ovlp, 3)},
    }
    st = DeepHStructure(
        cell=cell_rows.copy(),
        positions=positions.copy(),
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        orbital_types=cell_shells(cell),
        fermi_level=mu,
        hamiltonians=h_blocks,
        overlaps=s_blocks,
        info=info,
    )
    return DFTResult(structure=st, scf=mf, kmesh=kmesh, dense_kmesh=tuple(int(n) for n in dense),
                     timings=info["timings_s"])


