"""From an input structure file to a predicted DeepH structure: H from the model, S exact, N_e and E_F.

Input (``read_input_structure``): a DeepH folder (its overlaps.h5/hamiltonians.h5 are kept when present)
or any file ASE reads (CIF, POSCAR, extxyz, ...), in Å; implausible interatomic distances (Bohr or
fractional input) are rejected by ``checks.check_geometry``.
Overlap: the folder's overlaps.h5 when present (its orbital types must be the model's), otherwise exact
two-centre integrals (``data_prep.dft.overlap_blocks``) in the DFT basis the model was trained on.
Electrons: info.json ``n_electrons`` when present, otherwise the pseudopotential valences of that recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_prep.basis import element_symbol
from data_prep.deeph_format import MATRIX_FILES, DeepHStructure, deeph_layout, read_deeph

from . import progress
from .checks import check_geometry
from .electrons import INFO_KEYS
from .gauge import gauge_info, model_hamiltonian
from .model_io import ModelInputError, check_known_elements, dft_settings, warn_outside_training
from .predict import geometry_of, predict_many

if TYPE_CHECKING:
    from deeph_lightning.models.checkpoint import LoadedModel

DEFAULT_OVERLAP_RADIUS = 9.5  # Å, as the DFT runner stores S(R)
# Without --overlap-radius, S(R) is grown by this step while S(k) of its blocks is indefinite somewhere on the
# check k-points (data_prep.kspace.overlap_check_kpoints; diffuse basis functions, e.g. Cs and Rb s orbitals), up
# to the largest radius; checked for cells up to OVERLAP_CHECK_MAX_ORBITALS orbitals (a dense diagonalisation per k).
OVERLAP_RADIUS_STEP, MAX_OVERLAP_RADIUS = 2.5, 17.0
OVERLAP_CHECK_MAX_ORBITALS = 2000


def read_input_structure(path: str) -> DeepHStructure:
    """Geometry (and any blocks) of a DeepH folder or an ASE-readable file; orbital types left empty for files."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if p.is_dir():
        h_file, s_file = MATRIX_FILES[deeph_layout(p)]
        st = read_deeph(p, hamiltonian=(p / h_file).is_file(), overlap=(p / s_file).is_file())
    else:
        import ase.io

        try:
            atoms = ase.io.read(str(p))
        except Exception as err:  # ASE raises many types for unknown/corrupt files
            raise ValueError(f"{path}: ASE cannot read this structure file ({type(err).__name__}: {err})") from None
        st = DeepHStructure(cell=np.asarray(atoms.cell[:], dtype=float), positions=atoms.positions.copy(),
                            numbers=atoms.numbers.astype(np.int64), orbital_types=[], pbc=np.asarray(atoms.pbc, bool),
                            source=str(p))
    if st.n_atoms == 0:
        raise ValueError(f"{path}: the structure has no atoms")
    check_geometry(st.cell, st.positions, st.numbers, st.pbc, str(path))
    return st


def to_atoms(st: DeepHStructure):
    from ase import Atoms

    return Atoms(numbers=st.numbers, positions=st.positions, cell=st.cell, pbc=st.pbc)


def model_orbital_types(loaded: LoadedModel, st: DeepHStructure) -> list[list[int]]:
    """Each atom's shells in the model's basis; a folder with other orbital types is an error."""
    where = st.source or "structure"
    check_known_elements(loaded, st.numbers, where)
    types = [list(loaded.basis.shells_of(int(z))) for z in st.numbers]
    if st.orbital_types and st.orbital_types != types:
        a = next(k for k, (x, y) in enumerate(zip(st.orbital_types, types)) if x != y)
        raise ModelInputError(
            f"{where}/orbital_types.dat: atom {a + 1} ({element_symbol(int(st.numbers[a]))}) has shells "
            f"{st.orbital_types[a]} but the model's basis has {types[a]}: the folder's DFT basis is not the model's"
        )
    return types


def exact_overlaps(loaded: LoadedModel, st: DeepHStructure, *, dft_basis: str | None = None,
                   radius: float = DEFAULT_OVERLAP_RADIUS):
    settings = dft_settings(loaded, dft_basis)
    where = st.source or "structure"
    if settings is None:
        raise ModelInputError(
            f"{where}: no overlaps.h5 to take S(R) from, and the checkpoint does not record the DFT basis it was "
            "trained on: pass --dft-basis NAME (e.g. SZV-MOLOPT-SR-GTH) or give a DeepH folder with overlaps.h5"
        )
    if not np.all(st.pbc):
        raise ModelInputError(f"{where}: exact overlaps need a periodic cell: put molecules/slabs in a box, pbc=True")
    from data_prep.dft import overlap_blocks

    blocks = overlap_blocks(to_atoms(st), settings.basis, radius)
    n_orb = [loaded.basis.n_orbitals(int(z)) for z in st.numbers]
    for (rx, ry, rz, i, j), blk in blocks.items():
        if blk.shape != (n_orb[i], n_orb[j]):
            raise ModelInputError(
                f"{where}: DFT basis {settings.basis!r} gives {blk.shape[0]} orbitals for atom {i + 1} "
                f"({element_symbol(int(st.numbers[i]))}) but the model has {n_orb[i]}: wrong --dft-basis"
            )
        break
    return blocks, settings


def electron_count(loaded: LoadedModel, st: DeepHStructure, settings=None, explicit: float | None = None) -> float | None:
    if explicit is not None:
        return float(explicit)
    n = next((float(st.info[k]) for k in INFO_KEYS if st.info.get(k) is not None), None)
    if n is not None:
        return n
    settings = settings or dft_settings(loaded)
    if settings is None:
        return None
    from data_prep.dft import valence_electrons

    try:
        return float(valence_electrons(to_atoms(st), settings))
    except KeyError:
        return None


def positive_definite_overlaps(loaded: LoadedModel, st: DeepHStructure, dft_basis: str | None = None):
    """(S(R) blocks, DFT settings, radius): exact overlaps within ``DEFAULT_OVERLAP_RADIUS``, grown by
    ``OVERLAP_RADIUS_STEP`` while S(k) is not positive definite on the check mesh. The DFT's own S(k) sums all
    lattice images; cut at 9.5 Å it is indefinite for diffuse bases (CsCl: smallest eigenvalue -0.005) and no
    band can be computed. H stays zero beyond the model's cutoff."""
    from data_prep.kspace import overlap_check_kpoints, overlap_floor

    radius = DEFAULT_OVERLAP_RADIUS
    n_orb = [loaded.basis.n_orbitals(int(z)) for z in st.numbers]
    mesh = overlap_check_kpoints(st.cell)
    while True:
        with progress.step(f"S(R): two-centre integrals of {len(st.numbers)} atoms within {radius} Å"):
            overlaps, settings = exact_overlaps(loaded, st, dft_basis=dft_basis, radius=radius)
        if (sum(n_orb) > OVERLAP_CHECK_MAX_ORBITALS or radius >= MAX_OVERLAP_RADIUS
                or overlap_floor(overlaps, n_orb, mesh).min() > 0):
            return overlaps, settings, radius
        radius += OVERLAP_RADIUS_STEP


def predicted_structure(loaded: LoadedModel, st: DeepHStructure, *, dft_basis: str | None = None,
                        overlap_radius: float | None = None, n_electrons: float | None = None,
                        hamiltonians=None) -> DeepHStructure:
    """``st`` with H predicted by the model (or the given ``hamiltonians``), S exact, info n_electrons/model.
    ``overlap_radius``: S(R) for the pairs within it; None: 9.5 Å, or more where that leaves S(k) indefinite
    (``positive_definite_overlaps``)."""
    types = model_orbital_types(loaded, st)
    settings = None
    if st.overlaps is not None:
        overlaps = st.overlaps
        s_source = f"{st.source}/{MATRIX_FILES[st.layout][1]}"
    else:
        if overlap_radius is None:
            overlaps, settings, overlap_radius = positive_definite_overlaps(loaded, st, dft_basis)
        else:
            with progress.step(f"S(R): two-centre integrals of {len(st.numbers)} atoms within {overlap_radius} Å"):
                overlaps, settings = exact_overlaps(loaded, st, dft_basis=dft_basis, radius=overlap_radius)
        s_source = f"two-centre integrals, basis {settings.basis}, pairs within {overlap_radius:g} Å"
    outside: list[list[str]] = []
    if hamiltonians is None:
        with progress.step(f"H(R): predicting {len(st.numbers)} atoms with the model"):
            h = model_hamiltonian(loaded, st.numbers, next(predict_many(loaded, [st], outside=outside)), overlaps)
        warn_outside_training(geometry_of(st)[4], outside[0])
    else:
        h = hamiltonians
    info = {k: v for k, v in st.info.items() if k not in ("dft", "outside_training")}
    if outside and loaded.training_bonds is not None:
        info["outside_training"] = outside[0]  # the bonds training never had (model_io.outside_training)
    n_e = electron_count(loaded, st, settings, n_electrons)
    info.update(
        n_electrons=n_e,
        hamiltonian_source=f"deeph-lightning model {loaded.meta.get('path', '')} (step {loaded.meta.get('global_step')})",
        overlap_source=s_source,
        model_cutoff=loaded.cutoff,
        gauge=gauge_info(loaded.target_gauge, h, overlaps),
    )
    return DeepHStructure(cell=st.cell, positions=st.positions, numbers=st.numbers, orbital_types=types,
                          fermi_level=None, hamiltonians=h, overlaps=overlaps, pbc=st.pbc, isorthogonal=False,
                          info=info, source=st.source)
