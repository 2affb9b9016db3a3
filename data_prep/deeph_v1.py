"""Read and write the DeepH-pack v1 layout (the one DeepH-dock's converters write), a public interface.

One folder per structure::

    POSCAR              VASP 5 format: lattice vectors as rows, species and counts, positions; Å.
                        Atoms are grouped by species; we write Cartesian positions and read either kind.
    info.json           atoms_quantity, orbits_quantity, orthogonal_basis, spinful, fermi_energy_eV (eV or null),
                        elements_orbital_map (element symbol -> l of each shell, e.g. {"Si": [0, 0, 1, 1, 2]})
    hamiltonian.h5      four datasets describing N blocks:
    overlap.h5            atom_pairs (N, 5) int64: Rx, Ry, Rz, i, j with 0-based atoms in POSCAR order
                          chunk_shapes (N, 2) int64: (n_orb_i, n_orb_j)
                          chunk_boundaries (N + 1,) int64: offsets of each block in entries, from 0
                          entries (Σ n_i n_j,): every block flattened row-major, concatenated
    density_matrix.h5   optional, same datasets (not read: we use H and S only)

Same block convention as the legacy layout: M_ij(R) = <φ_i,0|M|φ_j,R>. Orbitals within a shell are in
m = −l…l order (``data_prep.basis.openmx_to_v1_order``); in memory they are in OpenMX order, as always.
Writing groups the atoms by species in order of first appearance (a structure already grouped keeps its
order) and says so in ``atom_order``, the permutation applied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_dir
from .basis import CHEMICAL_SYMBOLS, LMAX_SUPPORTED, element_symbol, openmx_to_v1_order
from .deeph_format import MATRIX_FILES, Blocks, DeepHFormatError, DeepHStructure

CHUNK_DATASETS = ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries")
V1_INFO_KEYS = ("atoms_quantity", "orbits_quantity", "orthogonal_basis", "spinful", "fermi_energy_eV",
                "elements_orbital_map")
LEGACY_INFO_KEYS = ("nsites", "norbits", "isspinful", "isorthogonal", "fermi_level")


# ---------------------------------------------------------------------------------------------------
# POSCAR


def _floats(path: Path, line_no: int, text: str, n: int | None = None) -> list[float]:
    try:
        vals = [float(v) for v in text.split()[: n or None]]
    except ValueError:
        raise DeepHFormatError(f"{path}: line {line_no} should hold numbers, got {text.strip()!r}") from None
    if n is not None and len(vals) != n:
        raise DeepHFormatError(f"{path}: line {line_no} should hold {n} numbers, got {text.strip()!r}")
    return vals


def read_poscar(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell rows Å, Cartesian positions Å, atomic numbers) of a VASP 5 POSCAR, atoms in file order."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if len(lines) < 8:
        raise DeepHFormatError(f"{path}: {len(lines)} lines, too short for a POSCAR")
    scale = np.array(_floats(path, 2, lines[1]))
    if len(scale) not in (1, 3) or (len(scale) == 3 and np.any(scale <= 0)) or scale[0] == 0:
        raise DeepHFormatError(f"{path}: line 2 should be one scale factor (or three positive ones), got {lines[1]!r}")
    lat = np.array([_floats(path, 3 + k, lines[2 + k], 3) for k in range(3)])
    if len(scale) == 1 and scale[0] < 0:  # VASP: a negative scale is the cell volume
        scale = np.full(3, (-scale[0] / abs(np.linalg.det(lat))) ** (1 / 3))
    scale = np.broadcast_to(scale, (3,))
    cell = lat * scale[None, :]
    symbols = [s.split("_")[0].split("/")[0] for s in lines[5].split()]
    if not symbols or not all(s in CHEMICAL_SYMBOLS[1:] for s in symbols):
        raise DeepHFormatError(f"{path}: line 6 should list element symbols (VASP 5 POSCAR), got {lines[5].strip()!r}")
    try:
        counts = [int(v) for v in lines[6].split()]
    except ValueError:
        counts = []
    if len(counts) != len(symbols) or min(counts) < 1:
        raise DeepHFormatError(f"{path}: line 7 should give one positive atom count per species of line 6, "
                               f"got {lines[6].strip()!r}")
    at = 7
    if lines[at].strip()[:1].lower() == "s":  # "Selective dynamics"
        at += 1
    cartesian = lines[at].strip()[:1].lower() in ("c", "k")
    n = sum(counts)
    if len(lines) < at + 1 + n:
        raise DeepHFormatError(f"{path}: {n} atoms in line 7 but only {len(lines) - at - 1} position lines")
    coords = np.array([_floats(path, at + 2 + a, " ".join(lines[at + 1 + a].split()[:3]), 3) for a in range(n)])
    positions = coords * scale[None, :] if cartesian else coords @ cell
    numbers = np.repeat([CHEMICAL_SYMBOLS.index(s) for s in symbols], counts).astype(np.int64)
    return cell, positions, numbers


def _species_runs(numbers: np.ndarray) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for z in numbers.tolist():
        if runs and runs[-1][0] == z:
            runs[-1] = (z, runs[-1][1] + 1)
        else:
            runs.append((z, 1))
    return runs


def write_poscar(path: Path, cell: np.ndarray, positions: np.ndarray, numbers: np.ndarray, comment: str) -> None:
    """Cartesian POSCAR, scale 1, numbers written exactly (shortest round-trip repr). Atoms must be grouped."""
    runs = _species_runs(np.asarray(numbers))
    if len({z for z, _ in runs}) != len(runs):
        raise ValueError("POSCAR atoms must be grouped by species")
    out = [comment.replace("\n", " "), "1.0"]
    out += ["  " + "  ".join(repr(float(x)) for x in row) for row in np.asarray(cell, dtype=float)]
    out.append(" ".join(element_symbol(z) for z, _ in runs))
    out.append(" ".join(str(c) for _, c in runs))
    out.append("Cartesian")
    out += ["  " + "  ".join(repr(float(x)) for x in row) for row in np.asarray(positions, dtype=float)]
    path.write_text("\n".join(out) + "\n")


def species_grouped_order(numbers) -> np.ndarray:
    """Atom order with atoms grouped by species, species in order of first appearance (stable)."""
    numbers = np.asarray(numbers)
    species = list(dict.fromkeys(numbers.tolist()))
    return np.concatenate([np.flatnonzero(numbers == z) for z in species]).astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# info.json


def _orbital_map(path: Path, info: dict) -> dict[str, list[int]]:
    omap = info.get("elements_orbital_map")
    if not isinstance(omap, dict) or not omap:
        raise DeepHFormatError(f"{path}: elements_orbital_map missing or empty (element -> l of each shell)")
    for el, ls in omap.items():
        if (not isinstance(ls, list) or not ls
                or not all(isinstance(l, int) and not isinstance(l, bool) and 0 <= l <= LMAX_SUPPORTED for l in ls)):
            raise DeepHFormatError(f"{path}: elements_orbital_map[{el!r}] = {ls!r}; expected a list of shell l "
                                   f"in 0..{LMAX_SUPPORTED}")
    return omap


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DeepHFormatError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(info, dict):
        raise DeepHFormatError(f"{path}: expected a JSON object")
    if info.get("spinful", False):
        raise DeepHFormatError(f"{path}: spinful=true; spinful Hamiltonians are not supported yet")
    return info


# ---------------------------------------------------------------------------------------------------
# chunked blocks


def _dataset(f, path: Path, name: str) -> np.ndarray:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise DeepHFormatError(f"{path}: no dataset {name!r} (a v1 file holds {', '.join(CHUNK_DATASETS)})")
    return f[name][()]


def read_chunked_blocks(path: Path, numbers: np.ndarray, orbital_types: list[list[int]]) -> Blocks:
    """Blocks of a v1 ``hamiltonian.h5``/``overlap.h5``, checked, in OpenMX order, keyed (Rx, Ry, Rz, i, j)."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DeepHFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        pairs, shapes, bounds, entries = (_dataset(f, path, name) for name in CHUNK_DATASETS)
    for name, arr in (("atom_pairs", pairs), ("chunk_shapes", shapes), ("chunk_boundaries", bounds)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DeepHFormatError(f"{path}: {name} has dtype {arr.dtype}, expected integers")
    n = len(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 5:
        raise DeepHFormatError(f"{path}: atom_pairs has shape {pairs.shape}, expected (N, 5) rows Rx, Ry, Rz, i, j")
    if shapes.shape != (n, 2):
        raise DeepHFormatError(f"{path}: chunk_shapes has shape {shapes.shape}, expected ({n}, 2) for {n} atom_pairs")
    if bounds.shape != (n + 1,):
        raise DeepHFormatError(f"{path}: chunk_boundaries has shape {bounds.shape}, expected ({n + 1},) "
                               f"for {n} atom_pairs")
    if entries.ndim != 1:
        raise DeepHFormatError(f"{path}: entries has shape {entries.shape}, expected one flat array")
    if not np.issubdtype(entries.dtype, np.number):
        raise DeepHFormatError(f"{path}: entries has dtype {entries.dtype}, expected numbers")
    if bounds[0] != 0 or bounds[-1] != entries.size:
        raise DeepHFormatError(f"{path}: chunk_boundaries runs from {bounds[0]} to {bounds[-1]} but entries has "
                               f"{entries.size} values (expected 0 to {entries.size})")
    sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
    bad = np.flatnonzero((np.diff(bounds) != sizes) | (shapes.min(axis=1, initial=1) < 1))
    if bad.size:
        k = int(bad[0])
        raise DeepHFormatError(f"{path}: chunk {k} ({_pair_text(pairs[k])}) spans entries {bounds[k]}..{bounds[k + 1]} "
                               f"but chunk_shapes gives {tuple(shapes[k].tolist())}")
    n_atoms = len(numbers)
    bad = np.flatnonzero((pairs[:, 3:] < 0).any(axis=1) | (pairs[:, 3:] >= n_atoms).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise DeepHFormatError(f"{path}: chunk {k} ({_pair_text(pairs[k])}) names an atom outside 0..{n_atoms - 1} "
                               f"(POSCAR has {n_atoms} atoms; v1 atoms are 0-based)")
    if np.iscomplexobj(entries):
        if np.abs(entries.imag).max(initial=0.0) > 1e-8:
            raise DeepHFormatError(f"{path}: entries are complex; spinful/complex data is not supported")
        entries = entries.real
    if not np.all(np.isfinite(entries)):
        raise DeepHFormatError(f"{path}: entries contain NaN or inf")
    n_orb = np.array([sum(2 * l + 1 for l in ls) for ls in orbital_types], dtype=np.int64)
    expected = np.stack([n_orb[pairs[:, 3]], n_orb[pairs[:, 4]]], axis=1)
    bad = np.flatnonzero((shapes != expected).any(axis=1))
    if bad.size:
        k = int(bad[0])
        i, j = (int(v) for v in pairs[k, 3:])
        raise DeepHFormatError(
            f"{path}: chunk {k} ({_pair_text(pairs[k])}) has shape {tuple(shapes[k].tolist())} but info.json "
            f"elements_orbital_map gives {tuple(expected[k].tolist())} for {element_symbol(int(numbers[i]))} "
            f"(atom {i}) and {element_symbol(int(numbers[j]))} (atom {j})"
        )
    back = [np.argsort(openmx_to_v1_order(ls)) for ls in orbital_types]  # v1 -> OpenMX, per atom
    blocks: Blocks = {}
    for k, row in enumerate(pairs.tolist()):
        key = tuple(int(v) for v in row)
        if key in blocks:
            raise DeepHFormatError(f"{path}: {_pair_text(pairs[k])} appears twice in atom_pairs")
        i, j = key[3], key[4]
        blk = entries[bounds[k] : bounds[k + 1]].reshape(n_orb[i], n_orb[j])
        blocks[key] = np.ascontiguousarray(blk[back[i]][:, back[j]])
    return blocks


def _pair_text(row) -> str:
    rx, ry, rz, i, j = (int(v) for v in row)
    return f"R=({rx}, {ry}, {rz}), atoms {i}, {j}"


def write_chunked_blocks(path: Path, blocks: Blocks, orbital_types: list[list[int]]) -> None:
    """``blocks`` (OpenMX order, keys in the file's atom order) as the four chunk datasets, sorted by key."""
    perm = [openmx_to_v1_order(ls) for ls in orbital_types]
    keys = sorted(blocks)
    chunks = [np.asarray(blocks[k])[perm[k[3]]][:, perm[k[4]]] for k in keys]
    shapes = np.array([c.shape for c in chunks], dtype=np.int64).reshape(len(keys), 2)
    bounds = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])]).astype(np.int64)
    dtype = np.result_type(*{c.dtype for c in chunks}) if chunks else np.float64
    entries = np.concatenate([c.ravel() for c in chunks]).astype(dtype) if chunks else np.zeros(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("atom_pairs", data=np.array(keys, dtype=np.int64).reshape(len(keys), 5))
        f.create_dataset("chunk_shapes", data=shapes)
        f.create_dataset("chunk_boundaries", data=bounds)
        f.create_dataset("entries", data=entries)


# ---------------------------------------------------------------------------------------------------
# folders


def read_deeph_v1(folder: str | os.PathLike, *, hamiltonian: bool = True, overlap: bool = True) -> DeepHStructure:
    folder = Path(folder)
    for name in ("POSCAR", "info.json"):
        if not (folder / name).is_file():
            raise DeepHFormatError(f"{folder}: missing {name}")
    cell, positions, numbers = read_poscar(folder / "POSCAR")
    info_path = folder / "info.json"
    info = _read_info(info_path)
    omap = _orbital_map(info_path, info)
    missing = sorted({element_symbol(int(z)) for z in numbers} - set(omap))
    if missing:
        raise DeepHFormatError(f"{info_path}: elements_orbital_map has no entry for {', '.join(missing)} "
                               "(species of POSCAR)")
    orbital_types = [list(omap[element_symbol(int(z))]) for z in numbers]
    n_orb = sum(sum(2 * l + 1 for l in ls) for ls in orbital_types)
    for key, expected in (("atoms_quantity", len(numbers)), ("orbits_quantity", n_orb)):
        if info.get(key) is not None and info[key] != expected:
            raise DeepHFormatError(f"{info_path}: {key}={info[key]} but POSCAR and elements_orbital_map give {expected}")
    fermi = info.get("fermi_energy_eV")
    st = DeepHStructure(
        cell=cell, positions=positions, numbers=numbers, orbital_types=orbital_types,
        fermi_level=None if fermi is None else float(fermi),
        pbc=np.asarray(info.get("pbc", [True, True, True]), dtype=bool),
        isorthogonal=bool(info.get("orthogonal_basis", False)),
        info={k: v for k, v in info.items() if k not in V1_INFO_KEYS and k != "pbc"},
        source=str(folder), layout="v1",
    )
    h_file, s_file = (folder / name for name in MATRIX_FILES["v1"])
    if hamiltonian:
        if not h_file.is_file():
            raise DeepHFormatError(f"{folder}: missing {h_file.name}")
        st.hamiltonians = read_chunked_blocks(h_file, numbers, orbital_types)
    if overlap:
        if s_file.is_file():
            st.overlaps = read_chunked_blocks(s_file, numbers, orbital_types)
        elif not st.isorthogonal:
            raise DeepHFormatError(f"{folder}: missing {s_file.name} (and info.json does not say orthogonal_basis)")
    return st


def _renumbered(blocks: Blocks | None, new_index: np.ndarray) -> Blocks | None:
    if blocks is None:
        return None
    return {(rx, ry, rz, int(new_index[i]), int(new_index[j])): b for (rx, ry, rz, i, j), b in blocks.items()}


def atom_order(st: DeepHStructure) -> np.ndarray:
    """The order the v1 writer puts ``st``'s atoms in: ``order[k]`` is the old index of POSCAR atom k."""
    return species_grouped_order(st.numbers)


def write_deeph_v1(st: DeepHStructure, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``st`` in the v1 layout (atoms grouped by species, see ``atom_order``). All-or-nothing."""
    folder = Path(folder)
    order = atom_order(st)
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    numbers = np.asarray(st.numbers, dtype=np.int64)[order]
    types = [list(st.orbital_types[a]) for a in order]
    omap: dict[str, list[int]] = {}
    for z, ls in zip(numbers.tolist(), types):
        if omap.setdefault(element_symbol(z), ls) != ls:
            raise DeepHFormatError(f"{st.source or 'structure'}: two {element_symbol(z)} atoms have different "
                                   "shells; the v1 layout has one shell list per element")
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        write_poscar(tmp / "POSCAR", st.cell, np.asarray(st.positions)[order], numbers,
                     "written by deeph-lightning (DeepH-pack v1 layout)")
        info = {k: v for k, v in st.info.items() if k not in LEGACY_INFO_KEYS and k not in V1_INFO_KEYS}
        info.update(
            atoms_quantity=int(len(numbers)),
            orbits_quantity=int(sum(sum(2 * l + 1 for l in ls) for ls in types)),
            orthogonal_basis=bool(st.isorthogonal),
            spinful=False,
            fermi_energy_eV=None if st.fermi_level is None else float(st.fermi_level),
            elements_orbital_map=omap,
            pbc=[bool(p) for p in st.pbc],
        )
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        h_name, s_name = MATRIX_FILES["v1"]
        if st.hamiltonians is not None:
            write_chunked_blocks(tmp / h_name, _renumbered(st.hamiltonians, new_index), types)
        if st.overlaps is not None:
            write_chunked_blocks(tmp / s_name, _renumbered(st.overlaps, new_index), types)
    return folder

