"""ASE Atoms -> PySCF periodic Cell, with the input checks every DFT run needs first."""

from __future__ import annotations

import functools
import os
import re
import warnings

import numpy as np

from ..basis import element_symbol
from .settings import DFTSettings, pyscf_basis_name


class BadStructureError(ValueError):
    """The structure cannot be computed (no atoms, degenerate cell, overlapping atoms, unknown element)."""


@functools.lru_cache(maxsize=None)
def _basis_file_valences(basis: str) -> dict[str, int]:
    """Element -> valence q named in a GTH basis file (e.g. 'SZV-MOLOPT-SR-GTH-q4'); {} if none."""
    from pyscf.pbc.gto import basis as pbc_basis

    name = pyscf_basis_name(basis)
    path = os.path.join(os.path.dirname(pbc_basis.__file__), f"{name}.dat")
    if not os.path.isfile(path):
        return {}
    text = open(path).read()
    return {s: int(q) for s, q in re.findall(r"^\s*([A-Z][a-z]?)\s+\S+\s+\S+-q(\d+)\s*$", text, re.M)}


@functools.lru_cache(maxsize=None)
def element_basis(basis: str, symbol: str):
    """PySCF basis of one element (list of shells); KeyError naming the element if the basis lacks it."""
    from pyscf.pbc import gto

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "basis may be available in basis-set-exchange"
            return gto.basis.load(pyscf_basis_name(basis), symbol)
    except Exception:
        raise KeyError(f"basis {basis} has no functions for element {symbol}") from None


@functools.lru_cache(maxsize=None)
def element_pseudo(pseudo: str, basis: str, symbol: str) -> tuple[str, int]:
    """(PySCF pseudo name, valence) for an element, matching the basis's valence when it names one."""
    from pyscf.gto.basis import load_pseudo

    q = _basis_file_valences(basis).get(symbol)
    name = f"{pseudo}-q{q}" if q is not None else pseudo
    try:
        pp = load_pseudo(name, symbol)
    except Exception:
        pp = None
    if not pp:
        raise KeyError(f"pseudopotential {name} has no entry for element {symbol}")
    return name, int(sum(pp[0]))


def supported_elements(settings: DFTSettings = DFTSettings()) -> list[int]:
    """Atomic numbers the recipe can compute (basis and matching pseudopotential both available)."""
    out = []
    for z in range(1, 87):
        try:
            element_basis(settings.basis, element_symbol(z))
            element_pseudo(settings.pseudo, settings.basis, element_symbol(z))
        except KeyError:
            continue
        out.append(z)
    return out


def valence_electrons(atoms, settings: DFTSettings = DFTSettings()) -> int:
    """Electrons per cell left by the pseudopotentials (what the DFT run occupies)."""
    return sum(element_pseudo(settings.pseudo, settings.basis, s)[1] for s in atoms.get_chemical_symbols())


def check_structure(atoms, settings: DFTSettings = DFTSettings(), where: str = "structure") -> None:
    """Raise ``BadStructureError`` with a clear message if ``atoms`` cannot be computed."""
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    from ..geometry import GeometryValueError, check_geometry_values

    if len(atoms) == 0:
        raise BadStructureError(f"{where}: structure has no atoms")
    cell = np.asarray(atoms.cell[:], dtype=float)
    try:
        check_geometry_values(cell, atoms.positions, np.asarray(atoms.pbc, dtype=bool), where)
    except GeometryValueError as err:
        raise BadStructureError(str(err)) from None
    if not np.all(atoms.pbc):
        raise BadStructureError(
            f"{where}: periodic DFT needs pbc in all three directions (got {atoms.pbc.tolist()}); "
            "put molecules and slabs in a box with vacuum and set pbc=True"
        )
    volume, lengths = abs(np.linalg.det(cell)), np.linalg.norm(cell, axis=1)
    if lengths.min() < 0.1 or volume < 1e-3 * lengths.prod():
        raise BadStructureError(
            f"{where}: degenerate cell (lattice vector lengths {np.round(lengths, 3).tolist()} Å, "
            f"volume {volume:.3g} Å³): missing or parallel lattice vectors?"
        )
    bad = []
    for s in sorted(set(atoms.get_chemical_symbols())):
        try:
            element_basis(settings.basis, s)
            element_pseudo(settings.pseudo, settings.basis, s)
        except KeyError as err:
            bad.append(f"{s} ({err.args[0]})")
    if bad:
        raise BadStructureError(f"{where}: unsupported element(s): {'; '.join(bad)}")
    radii = covalent_radii[atoms.numbers]
    cutoff = settings.min_distance_factor * 2 * radii.max()
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d):
        limit = settings.min_distance_factor * (radii[i] + radii[j])
        close = np.nonzero(d < limit)[0]
        if len(close):
            k = close[np.argmin(d[close] / limit[close])]
            raise BadStructureError(
                f"{where}: atoms {i[k] + 1} ({atoms[i[k]].symbol}) and {j[k] + 1} ({atoms[j[k]].symbol}) "
                f"are {d[k]:.3f} Å apart (periodic images included), less than {settings.min_distance_factor} x "
                f"the sum of covalent radii ({limit[k]:.3f} Å): overlapping atoms"
            )
    n_el = valence_electrons(atoms, settings)
    if n_el % 2 and settings.smearing == 0:
        raise BadStructureError(
            f"{where}: {n_el} valence electrons (odd) need fractional occupations: set smearing > 0"
        )


def grid_cutoff(basis: dict, settings: DFTSettings) -> float | None:
    """The density-grid cutoff (Ha) of a cell with these per-element bases: ``ke_cutoff``, raised to
    ``ke_cutoff_d`` where a d shell is present."""
    if settings.ke_cutoff is None:
        return None
    has_d = any(shell[0] == 2 for shells in basis.values() for shell in shells)
    if has_d and settings.ke_cutoff_d is not None:
        return float(max(settings.ke_cutoff, settings.ke_cutoff_d))
    return float(settings.ke_cutoff)


def build_cell(atoms, settings: DFTSettings = DFTSettings(), where: str = "structure"):
    """PySCF ``pbc.gto.Cell`` for ``atoms`` (positions kept as given, Å)."""
    from pyscf.pbc import gto

    check_structure(atoms, settings, where)
    symbols = atoms.get_chemical_symbols()
    cell = gto.Cell()
    cell.unit = "A"
    cell.a = np.asarray(atoms.cell[:], dtype=float)
    cell.atom = [(s, tuple(float(x) for x in p)) for s, p in zip(symbols, atoms.positions)]
    cell.basis = {s: element_basis(settings.basis, s) for s in set(symbols)}
    cell.pseudo = {s: element_pseudo(settings.pseudo, settings.basis, s)[0] for s in set(symbols)}
    ke_cutoff = grid_cutoff(cell.basis, settings)
    if ke_cutoff is not None:
        cell.ke_cutoff = ke_cutoff
    cell.spin = valence_electrons(atoms, settings) % 2  # restricted KS with smearing ignores it; silences a warning
    cell.verbose = 0
    cell.build()
    return cell
