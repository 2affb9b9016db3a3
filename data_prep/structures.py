"""Read structures from anything ASE reads (extxyz, CIF, POSCAR, ...), catalogue manifests and folders.

Every structure gets an id: the file stem, with ``@k`` appended for frame k of a multi-frame file; for a
``manifest.jsonl`` (written by ``deeph-prep generate``) the ids it records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ase import Atoms

STRUCTURE_SUFFIXES = (".extxyz", ".xyz", ".cif", ".vasp", ".poscar", ".json", ".traj", ".pdb", ".xsf", ".in")


def _read_file(path: Path) -> list[Atoms]:
    from ase.io import read

    try:
        frames = read(path, index=":")
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a structure ({type(err).__name__}: {err})") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ValueError(f"{path}: no structure in file")
    return frames


def iter_structures(path: str | Path) -> Iterator[tuple[str, Atoms]]:
    """(id, Atoms) for a structure file, a manifest.jsonl, or a folder (its manifest or its structure files)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "manifest.jsonl").is_file():
            yield from iter_structures(path / "manifest.jsonl")
            return
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in STRUCTURE_SUFFIXES
                       or p.name.upper().startswith(("POSCAR", "CONTCAR")))
        if not files:
            raise ValueError(f"{path}: folder holds no manifest.jsonl and no structure files")
        for f in files:
            yield from iter_structures(f)
        return
    if path.name == "manifest.jsonl":
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                sid, name = entry["id"], entry["file"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{n}: expected a JSON object with 'id' and 'file'") from None
            frames = _read_file(path.parent / name)
            yield sid, frames[0]
        return
    frames = _read_file(path)
    if len(frames) == 1:
        yield path.stem, frames[0]
    else:
        for k, atoms in enumerate(frames):
            yield f"{path.stem}@{k}", atoms


def read_structures(paths) -> list[tuple[str, Atoms]]:
    """All structures of ``paths`` (see ``iter_structures``); duplicate ids are an error."""
    out, seen = [], {}
    for p in paths:
        for sid, atoms in iter_structures(p):
            if sid in seen:
                raise ValueError(f"structure id {sid!r} occurs twice ({seen[sid]} and {p}); ids name output folders")
            seen[sid] = p
            out.append((sid, atoms))
    return out
