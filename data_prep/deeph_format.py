"""Read and write the DeepH on-disk format (a public interface shared with DeepH-pack users).

One folder per structure::

    lat.dat             3x3, lattice vectors as *columns*, Å
    rlat.dat            3x3, reciprocal vectors as columns, 2π/Å (written; ignored on read)
    site_positions.dat  3xN Cartesian positions, Å (columns are atoms)
    element.dat         N atomic numbers
    orbital_types.dat   one line per atom: the l of each shell, e.g. "0 0 1 1 2"
    info.json           {"isspinful": false, "fermi_level": <eV>, "nsites", "norbits", "isorthogonal"}
    R_list.dat          optional: the lattice vectors R that occur in the blocks
    hamiltonians.h5     one dataset per block, key "[Rx, Ry, Rz, i, j]" (1-based atoms), (n_orb_i, n_orb_j), eV
    overlaps.h5         same keys, dimensionless

In memory: lattice vectors as rows (ASE convention), atoms 0-based, blocks keyed by (Rx, Ry, Rz, i, j).
H_ij(R) = <φ_i,0 | H | φ_j,R>, so H_ij(R) = H_ji(-R)ᵀ for a real Hamiltonian.
Orbitals within a shell are in OpenMX order (see ``data_prep.basis``).

The DeepH-pack v1 layout (POSCAR, info.json, hamiltonian.h5/overlap.h5 with chunked blocks) is read and
written by ``data_prep.deeph_v1``; ``read_deeph`` detects the layout of a folder (``deeph_layout``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

import h5py
import numpy as np

from .atomic import atomic_dir
from .basis import BasisTable, element_symbol
from .geometry import GeometryValueError, check_geometry_values

BlockKey = Tuple[int, int, int, int, int]  # (Rx, Ry, Rz, i, j), atoms 0-based
Blocks = Dict[BlockKey, np.ndarray]

REQUIRED_FILES = ("lat.dat", "site_positions.dat", "element.dat", "orbital_types.dat", "info.json")
LAYOUTS = ("legacy", "v1")
MATRIX_FILES = {"legacy": ("hamiltonians.h5", "overlaps.h5"), "v1": ("hamiltonian.h5", "overlap.h5")}
HERMITICITY_TOL_EV = 1e-4
MAX_ATOMIC_NUMBER = 118


class DeepHFormatError(ValueError):
    """A DeepH-format folder is missing something or holds inconsistent data."""


@dataclass
class DeepHStructure:
    cell: np.ndarray  # (3, 3) rows = lattice vectors, Å
    positions: np.ndarray  # (N, 3) Cartesian, Å
    numbers: np.ndarray  # (N,) atomic numbers
    orbital_types: list[list[int]]  # per atom: l of each shell
    fermi_level: float | None = None  # eV
    hamiltonians: Blocks | None = None  # eV
    overlaps: Blocks | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.ones(3, dtype=bool))
    isorthogonal: bool = False
    info: dict = field(default_factory=dict)  # every other info.json entry, kept verbatim
    source: str = ""
    layout: str = "legacy"  # the on-disk layout it was read from (LAYOUTS)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def n_orbitals(self) -> np.ndarray:
        return np.array([sum(2 * l + 1 for l in ls) for ls in self.orbital_types], dtype=np.int64)

    def basis_table(self) -> BasisTable:
        """Element -> shells, checking every atom of an element has the same shells."""
        table: dict[int, tuple[int, ...]] = {}
        for a, (z, ls) in enumerate(zip(self.numbers, self.orbital_types)):
            z, ls = int(z), tuple(ls)
            if table.setdefault(z, ls) != ls:
                raise DeepHFormatError(
                    f"{self.source or 'structure'}: atom {a + 1} ({element_symbol(z)}) has shells {list(ls)} "
                    f"but an earlier {element_symbol(z)} atom has {list(table[z])}"
                )
        return BasisTable.from_mapping(table)


# ---------------------------------------------------------------------------------------------------
# reading


def _load_matrix(path: Path, shape_hint: str) -> np.ndarray:
    try:
        return np.loadtxt(path, ndmin=2)
    except ValueError as e:
        raise DeepHFormatError(f"{path}: cannot parse as a numeric matrix ({shape_hint}): {e}") from None


def parse_block_key(key: str, path: Path) -> BlockKey:
    try:
        vals = json.loads(key)
        if len(vals) != 5 or not all(isinstance(v, int) for v in vals):
            raise ValueError
    except (ValueError, TypeError):
        raise DeepHFormatError(f"{path}: dataset name {key!r} is not of the form '[Rx, Ry, Rz, i, j]'") from None
    rx, ry, rz, i, j = vals
    if i < 1 or j < 1:
        raise DeepHFormatError(f"{path}: dataset {key!r} has atom index < 1 (DeepH atoms are 1-based)")
    return (rx, ry, rz, i - 1, j - 1)


def format_block_key(key: BlockKey) -> str:
    rx, ry, rz, i, j = (int(v) for v in key)
    return f"[{rx}, {ry}, {rz}, {i + 1}, {j + 1}]"


def _read_block(f, name: str, path: Path) -> np.ndarray:
    """The array of dataset ``name``: a floating-point (or complex) 2-D dataset, else a clear error."""
    try:
        obj = f[name]
        if not isinstance(obj, h5py.Dataset):
            raise DeepHFormatError(f"{path}: {name} is an HDF5 {type(obj).__name__.lower()}, not a block dataset")
        if obj.dtype.kind not in "fc":
            raise DeepHFormatError(f"{path}: block {name} holds {obj.dtype} values; blocks must be floating point (eV)")
        return np.asarray(obj[()])
    except DeepHFormatError:
        raise
    except Exception as e:  # corrupt chunks, bad filters, ...
        raise DeepHFormatError(f"{path}: cannot read block {name}, corrupt HDF5 file ({type(e).__name__}: {e})") from None


def read_blocks(path: Path, n_orb: np.ndarray) -> Blocks:
    """Read every block of ``hamiltonians.h5``/``overlaps.h5`` and check its shape and values."""
    blocks: Blocks = {}
    n_atoms = len(n_orb)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DeepHFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        try:
            names = list(f.keys())
        except Exception as e:  # corrupt interior bytes raise many types
            raise DeepHFormatError(f"{path}: corrupt HDF5 file, cannot list its blocks ({type(e).__name__}: {e})") from None
        for name in names:
            key = parse_block_key(name, path)
            i, j = key[3], key[4]
            if i >= n_atoms or j >= n_atoms:
                raise DeepHFormatError(f"{path}: block {name} names atom > {n_atoms} (number of sites)")
            arr = _read_block(f, name, path)
            if np.iscomplexobj(arr):
                if np.abs(arr.imag).max(initial=0.0) > 1e-8:
                    raise DeepHFormatError(f"{path}: block {name} is complex; spinful/complex data is not supported")
                arr = arr.real
            expected = (n_orb[i], n_orb[j])
            if arr.shape != expected:
                raise DeepHFormatError(
                    f"{path}: block {name} has shape {arr.shape} but orbital_types.dat gives {expected} "
                    f"for atoms {i + 1} and {j + 1}"
                )
            if not np.all(np.isfinite(arr)):
                raise DeepHFormatError(f"{path}: block {name} contains NaN or inf")
            blocks[key] = arr
    return blocks


def deeph_layout(folder: str | os.PathLike) -> str:
    """"legacy" (element.dat, lat.dat, ... present) or "v1" (POSCAR beside info.json or a v1 matrix file);
    anything else (e.g. a folder with just a POSCAR) is not a DeepH folder.

    A folder holding some legacy file is legacy, so a missing one is reported by name when it is read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepHFormatError(f"{folder}: not a directory")
    if any((folder / name).is_file() for name in REQUIRED_FILES if name != "info.json"):
        return "legacy"
    if (folder / "POSCAR").is_file() and any((folder / n).is_file() for n in ("info.json", *MATRIX_FILES["v1"])):
        return "v1"
    raise DeepHFormatError(f"{folder}: not a DeepH folder (no element.dat (legacy layout), no POSCAR + info.json (v1))")


def is_deeph_folder(folder: str | os.PathLike) -> bool:
    try:
        deeph_layout(folder)
    except DeepHFormatError:
        return False
    return True


def _read_elements(path: Path) -> np.ndarray:
    """element.dat: one atomic number (1..118) per line."""
    try:
        numbers = np.loadtxt(path, ndmin=1)
    except ValueError:
        words = path.read_text().split()
        raise DeepHFormatError(f"{path}: expected atomic numbers, one per line (found {words[0]!r}; write 14 for Si, "
                               "not the symbol)" if words else f"{path}: expected atomic numbers, one per line") from None
    if numbers.ndim != 1 or len(numbers) == 0 or not np.all(np.isfinite(numbers)) or np.any(numbers != np.round(numbers)):
        raise DeepHFormatError(f"{path}: expected one positive atomic number per line")
    bad = numbers[(numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)]
    if bad.size:
        raise DeepHFormatError(f"{path}: atomic number {bad[0]:g} is not an element (1..{MAX_ATOMIC_NUMBER})")
    return numbers.astype(np.int64)


def _read_info(path: Path, n_sites: int, n_orbitals: int) -> tuple[dict, float | None, np.ndarray]:
    """info.json: (the whole object, fermi_level in eV or None, pbc as 3 booleans), with types checked."""
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DeepHFormatError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(info, dict):
        raise DeepHFormatError(f"{path}: expected a JSON object ({{\"fermi_level\": ...}}), got {type(info).__name__}")
    if info.get("isspinful", False):
        raise DeepHFormatError(f"{path}: isspinful=true; spinful Hamiltonians are not supported yet")
    for key, expected in (("nsites", n_sites), ("norbits", n_orbitals)):
        if key in info:
            value = info[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != expected:
                raise DeepHFormatError(f"{path}: {key}={value!r} but the folder has {expected}")
    fermi = info.get("fermi_level")
    if fermi is not None:
        if isinstance(fermi, bool) or not isinstance(fermi, (int, float)) or not np.isfinite(fermi):
            raise DeepHFormatError(f"{path}: fermi_level={fermi!r} is not a finite number (eV) or null")
        fermi = float(fermi)
    pbc = info.get("pbc", [True, True, True])
    if not (isinstance(pbc, list) and len(pbc) == 3 and all(isinstance(p, bool) for p in pbc)):
        raise DeepHFormatError(f"{path}: pbc={pbc!r}; expected three booleans, one per lattice vector")
    return info, fermi, np.asarray(pbc, dtype=bool)


def read_deeph(folder: str | os.PathLike, *, hamiltonian: bool = True, overlap: bool = True) -> DeepHStructure:
    """A DeepH folder of either layout (detected) in memory: OpenMX orbital order, 0-based atoms."""
    if deeph_layout(folder) == "v1":
        from .deeph_v1 import read_deeph_v1

        return read_deeph_v1(folder, hamiltonian=hamiltonian, overlap=overlap)
    return read_deeph_legacy(folder, hamiltonian=hamiltonian, overlap=overlap)


def read_deeph_legacy(folder: str | os.PathLike, *, hamiltonian: bool = True, overlap: bool = True) -> DeepHStructure:
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepHFormatError(f"{folder}: not a directory")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise DeepHFormatError(f"{folder}: missing {name}")

    lat = _load_matrix(folder / "lat.dat", "3x3, lattice vectors as columns")
    if lat.shape != (3, 3):
        raise DeepHFormatError(f"{folder / 'lat.dat'}: expected a 3x3 matrix, got shape {lat.shape}")
    numbers = _read_elements(folder / "element.dat")
    n = len(numbers)
    pos = _load_matrix(folder / "site_positions.dat", "3xN Cartesian positions")
    if pos.shape == (n, 3) and n != 3:
        raise DeepHFormatError(
            f"{folder / 'site_positions.dat'}: shape {pos.shape} looks like N x 3; DeepH stores 3 x N (atoms as columns)"
        )
    if pos.shape != (3, n):
        raise DeepHFormatError(f"{folder / 'site_positions.dat'}: expected shape (3, {n}) for {n} atoms, got {pos.shape}")
    lines = [ln.split() for ln in (folder / "orbital_types.dat").read_text().splitlines() if ln.strip()]
    if len(lines) != n:
        raise DeepHFormatError(f"{folder / 'orbital_types.dat'}: {len(lines)} lines for {n} atoms in element.dat")
    try:
        orbital_types = [[int(v) for v in ln] for ln in lines]
    except ValueError:
        raise DeepHFormatError(f"{folder / 'orbital_types.dat'}: expected integers (l of each shell)") from None
    if any(l < 0 for ls in orbital_types for l in ls):
        raise DeepHFormatError(f"{folder / 'orbital_types.dat'}: negative angular momentum l")
    info, fermi_level, pbc = _read_info(folder / "info.json", n, sum(sum(2 * l + 1 for l in ls) for ls in orbital_types))
    try:
        check_geometry_values(lat.T, pos.T, pbc, str(folder / "lat.dat"), str(folder / "site_positions.dat"))
    except GeometryValueError as err:
        raise DeepHFormatError(str(err)) from None

    st = DeepHStructure(
        cell=lat.T.copy(),
        positions=pos.T.copy(),
        numbers=numbers,
        orbital_types=orbital_types,
        fermi_level=fermi_level,
        pbc=pbc,
        isorthogonal=bool(info.get("isorthogonal", False)),
        info={k: v for k, v in info.items() if k not in ("fermi_level", "pbc", "isorthogonal", "isspinful")},
        source=str(folder),
    )
    n_orb = st.n_orbitals()
    if hamiltonian:
        if not (folder / "hamiltonians.h5").is_file():
            raise DeepHFormatError(f"{folder}: missing hamiltonians.h5")
        st.hamiltonians = read_blocks(folder / "hamiltonians.h5", n_orb)
    if overlap:
        if (folder / "overlaps.h5").is_file():
            st.overlaps = read_blocks(folder / "overlaps.h5", n_orb)
        elif not st.isorthogonal:
            raise DeepHFormatError(f"{folder}: missing overlaps.h5 (and info.json does not say isorthogonal)")
    return st


# ---------------------------------------------------------------------------------------------------
# checks


def check_hermitian(blocks: Blocks, where: str, tol: float = HERMITICITY_TOL_EV) -> float:
    """Check every block has its partner and H_ij(R) = H_ji(-R)ᵀ; returns the largest deviation."""
    worst = 0.0
    for (rx, ry, rz, i, j), blk in blocks.items():
        partner = (-rx, -ry, -rz, j, i)
        other = blocks.get(partner)
        if other is None:
            raise DeepHFormatError(
                f"{where}: block {format_block_key((rx, ry, rz, i, j))} has no partner {format_block_key(partner)}"
            )
        dev = float(np.abs(blk - other.T).max(initial=0.0))
        if dev > tol:
            raise DeepHFormatError(
                f"{where}: block {format_block_key((rx, ry, rz, i, j))} is not the transpose of "
                f"{format_block_key(partner)} (max deviation {dev:.3g} > tolerance {tol:g})"
            )
        worst = max(worst, dev)
    return worst


# ---------------------------------------------------------------------------------------------------
# writing


def _write_blocks(path: Path, blocks: Blocks) -> None:
    with h5py.File(path, "w") as f:
        for key in sorted(blocks):
            f.create_dataset(format_block_key(key), data=blocks[key])


def reciprocal_columns(cell_rows: np.ndarray) -> np.ndarray:
    """Reciprocal lattice vectors as columns (2π/Å): b_i · a_j = 2π δ_ij."""
    return 2 * np.pi * np.linalg.inv(cell_rows)


def write_deeph(st: DeepHStructure, folder: str | os.PathLike, *, overwrite: bool = False,
                layout: str = "legacy") -> Path:
    """Write ``st`` as a DeepH folder. All-or-nothing: written under a temporary name, then renamed."""
    if layout == "v1":
        from .deeph_v1 import write_deeph_v1

        return write_deeph_v1(st, folder, overwrite=overwrite)
    if layout != "legacy":
        raise ValueError(f"unknown DeepH layout {layout!r} (expected one of {', '.join(LAYOUTS)})")
    folder = Path(folder)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        np.savetxt(tmp / "lat.dat", np.asarray(st.cell).T)
        np.savetxt(tmp / "rlat.dat", reciprocal_columns(np.asarray(st.cell)))
        np.savetxt(tmp / "site_positions.dat", np.asarray(st.positions).T)
        np.savetxt(tmp / "element.dat", np.asarray(st.numbers, dtype=np.int64), fmt="%d")
        (tmp / "orbital_types.dat").write_text("".join(" ".join(map(str, ls)) + "\n" for ls in st.orbital_types))
        info = dict(st.info)
        info.update(
            isspinful=False,
            fermi_level=None if st.fermi_level is None else float(st.fermi_level),
            nsites=int(st.n_atoms),
            norbits=int(st.n_orbitals().sum()),
            isorthogonal=bool(st.isorthogonal),
            pbc=[bool(p) for p in st.pbc],
        )
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        keys = set(st.hamiltonians or {}) | set(st.overlaps or {})
        if keys:
            rs = sorted({k[:3] for k in keys})
            np.savetxt(tmp / "R_list.dat", np.array(rs, dtype=np.int64), fmt="%d")
        if st.hamiltonians is not None:
            _write_blocks(tmp / "hamiltonians.h5", st.hamiltonians)
        if st.overlaps is not None:
            _write_blocks(tmp / "overlaps.h5", st.overlaps)
    return folder
