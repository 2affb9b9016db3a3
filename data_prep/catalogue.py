"""Deterministic catalogue of structures for a universal Hamiltonian database.

Structure ``index`` of a catalogue with seed ``seed`` depends only on (seed, index) and the structures
before it (element balancing), so ``--n 100`` starts with the same 50 structures as ``--n 50`` and ids
are stable. Each structure: a prototype (elemental, binary, ternary, 2D layer or molecule in a box),
elements drawn so that every element of the list appears about equally often, a lattice constant from
covalent radii (ase.data), then a random supercell (<= ``max_atoms``), strain and rattling.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.data import atomic_numbers, chemical_symbols, covalent_radii, vdw_radii
from ase.spacegroup import crystal

VACUUM = 16.0  # Å of cell length across 2D layers / around molecules (cheap grids; the dense mesh handles aliasing)


NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe", "Rn")


def _radius(symbol: str) -> float:
    """Covalent radius; for noble gases (tiny covalent radii, no bonds) 3/4 of the van der Waals radius."""
    z = atomic_numbers[symbol]
    return 0.75 * float(vdw_radii[z]) if symbol in NOBLE_GASES else float(covalent_radii[z])


def _d(a: str, b: str, scale: float) -> float:
    """Bond length from covalent radii."""
    return scale * (_radius(a) + _radius(b))


# --- prototypes: (elements, scale) -> primitive Atoms ----------------------------------------------------


def fcc(e, s):
    a = _d(e[0], e[0], s) * math.sqrt(2)
    return crystal(e[0], [(0, 0, 0)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def bcc(e, s):
    a = 2 * _d(e[0], e[0], s) / math.sqrt(3)
    return crystal(e[0], [(0, 0, 0)], spacegroup=229, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def sc(e, s):
    a = _d(e[0], e[0], s)
    return Atoms(e[0], cell=np.eye(3) * a, pbc=True)


def hcp(e, s):
    a = _d(e[0], e[0], s)
    return crystal(e[0], [(1 / 3, 2 / 3, 0.25)], spacegroup=194, cellpar=[a, a, 1.633 * a, 90, 90, 120])


def diamond(e, s):
    a = 4 * _d(e[0], e[0], s) / math.sqrt(3)
    return crystal(e[0], [(0, 0, 0)], spacegroup=227, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def rocksalt(e, s):
    a = 2 * _d(e[0], e[1], s)
    return crystal(e[:2], [(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90],
                   primitive_cell=True)


def zincblende(e, s):
    a = 4 * _d(e[0], e[1], s) / math.sqrt(3)
    return crystal(e[:2], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=216, cellpar=[a, a, a, 90, 90, 90],
                   primitive_cell=True)


def wurtzite(e, s):
    a = _d(e[0], e[1], s) * math.sqrt(8 / 3)
    return crystal(e[:2], [(1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, 0.375)], spacegroup=186,
                   cellpar=[a, a, 1.633 * a, 90, 90, 120])


def cscl(e, s):
    a = 2 * _d(e[0], e[1], s) / math.sqrt(3)
    return Atoms(e[:2], scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5)], cell=np.eye(3) * a, pbc=True)


def fluorite(e, s):  # A X2
    a = 4 * _d(e[0], e[1], s) / math.sqrt(3)
    return crystal(e[:2], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a, a, a, 90, 90, 90],
                   primitive_cell=True)


def nias(e, s):
    d = _d(e[0], e[1], s)
    a = d * math.sqrt(2)
    return crystal(e[:2], [(0, 0, 0), (1 / 3, 2 / 3, 0.25)], spacegroup=194, cellpar=[a, a, 1.39 * a, 90, 90, 120])


def _layer(symbols, frac_xy, z, a):
    cell = [[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, VACUUM + np.ptp(z)]]
    pos = np.array([[x, y, 0.0] for x, y in frac_xy]) @ np.array(cell)
    pos[:, 2] = np.asarray(z) + VACUUM / 2
    return Atoms(symbols, positions=pos, cell=cell, pbc=True)


def honeycomb(e, s):  # graphene (one element) or h-BN-like (two)
    a = _d(e[0], e[-1], s) * math.sqrt(3)
    return _layer([e[0], e[-1]], [(0, 0), (1 / 3, 2 / 3)], [0.0, 0.0], a)


def mx2_layer(e, s):  # 2H-MoS2-like trigonal prismatic monolayer
    d = _d(e[0], e[1], s)
    a = d * 1.31
    h = math.sqrt(max(d * d - a * a / 3, 0.25))
    return _layer([e[0], e[1], e[1]], [(0, 0), (1 / 3, 2 / 3), (1 / 3, 2 / 3)], [0.0, h, -h], a)


def perovskite(e, s):  # A B X3, cubic
    a = 2 * _d(e[1], e[2], s)
    return Atoms([e[0], e[1], e[2], e[2], e[2]],
                 scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
                 cell=np.eye(3) * a, pbc=True)


def heusler(e, s):  # X2 Y Z (L2_1), primitive fcc cell
    a = 4 * _d(e[0], e[1], s) / math.sqrt(3)
    return crystal([e[0], e[1], e[2]], [(0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                   cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def spinel(e, s):  # A B2 X4, primitive cell (14 atoms)
    a = 4.1 * _d(e[1], e[2], s)
    return crystal([e[0], e[1], e[2]], [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (0.26, 0.26, 0.26)],
                   spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def _molecule(symbols, positions):
    pos = np.asarray(positions, dtype=float)
    box = VACUUM + np.ptp(pos, axis=0)
    return Atoms(symbols, positions=pos - pos.min(axis=0) + VACUUM / 2, cell=np.diag(box), pbc=True)


def dimer(e, s):
    return _molecule([e[0], e[-1]], [[0, 0, 0], [0, 0, _d(e[0], e[-1], s)]])


def bent_triatomic(e, s):  # X Y2, 105°
    d, t = _d(e[0], e[1], s), math.radians(52.5)
    return _molecule([e[0], e[1], e[1]], [[0, 0, 0], [d * math.sin(t), 0, d * math.cos(t)],
                                          [-d * math.sin(t), 0, d * math.cos(t)]])


def tetrahedral(e, s):  # X Y4
    d = _d(e[0], e[1], s) / math.sqrt(3)
    return _molecule([e[0]] + [e[1]] * 4, [[0, 0, 0], [d, d, d], [d, -d, -d], [-d, d, -d], [-d, -d, d]])


@dataclass(frozen=True)
class Prototype:
    name: str
    n_species: int
    build: Callable[[Sequence[str], float], Atoms]
    dims: int = 3  # 3 bulk, 2 layer, 0 molecule


PROTOTYPES = (
    Prototype("fcc", 1, fcc), Prototype("bcc", 1, bcc), Prototype("hcp", 1, hcp), Prototype("sc", 1, sc),
    Prototype("diamond", 1, diamond), Prototype("graphene", 1, honeycomb, 2), Prototype("dimer", 1, dimer, 0),
    Prototype("rocksalt", 2, rocksalt), Prototype("zincblende", 2, zincblende), Prototype("wurtzite", 2, wurtzite),
    Prototype("cscl", 2, cscl), Prototype("fluorite", 2, fluorite), Prototype("nias", 2, nias),
    Prototype("hbn", 2, honeycomb, 2), Prototype("mx2", 2, mx2_layer, 2), Prototype("heterodimer", 2, dimer, 0),
    Prototype("bent_xy2", 2, bent_triatomic, 0), Prototype("tetrahedral_xy4", 2, tetrahedral, 0),
    Prototype("perovskite", 3, perovskite), Prototype("heusler", 3, heusler), Prototype("spinel", 3, spinel),
)
PROTOTYPE_NAMES = tuple(p.name for p in PROTOTYPES)


# --- random perturbations ---------------------------------------------------------------------------------


def _supercell(atoms: Atoms, proto: Prototype, rng, max_atoms: int) -> Atoms:
    choices = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 1), (2, 1, 2), (1, 2, 2), (2, 2, 2)]
    if proto.dims == 2:
        choices = [c for c in choices if c[2] == 1]
    if proto.dims == 0:
        return atoms
    ok = [c for c in choices if len(atoms) * np.prod(c) <= max_atoms]
    weights = np.array([1.0 / np.prod(c) for c in ok])  # favour small cells
    reps = ok[rng.choice(len(ok), p=weights / weights.sum())]
    return make_supercell(atoms, np.diag(reps)) if reps != (1, 1, 1) else atoms


def _strain(atoms: Atoms, proto: Prototype, rng, amount: float) -> Atoms:
    if proto.dims == 0:
        return atoms
    eps = rng.normal(scale=amount, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    if proto.dims == 2:
        eps[2, :] = eps[:, 2] = 0.0  # keep the vacuum direction
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def min_distance_ratio(atoms: Atoms) -> float:
    """Smallest (distance / sum of covalent radii) over all pairs and periodic images."""
    from ase.neighborlist import neighbor_list

    r = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, 2 * r.max(), self_interaction=False)
    return float((d / (r[i] + r[j])).min()) if len(d) else math.inf


# --- the catalogue ----------------------------------------------------------------------------------------


def default_elements() -> list[str]:
    from .dft import supported_elements

    return [chemical_symbols[z] for z in supported_elements()]


def _pick_elements(n: int, elements: Sequence[str], counts: dict, rng) -> list[str]:
    w = np.array([1.0 / (1.0 + counts[e]) ** 2 for e in elements])
    return [str(x) for x in rng.choice(list(elements), size=n, replace=False, p=w / w.sum())]


def generate(n: int, seed: int = 0, elements: Sequence[str] | None = None, *, prototypes: Sequence[str] | None = None,
             max_atoms: int = 16, strain: float = 0.03, rattle: float = 0.05) -> list[tuple[str, Atoms, dict]]:
    """``n`` structures as (id, Atoms, metadata). Deterministic in (seed, elements, prototypes, options)."""
    elements = list(elements or default_elements())
    unknown = [e for e in elements if e not in atomic_numbers]
    if unknown:
        raise ValueError(f"unknown element symbol(s): {', '.join(unknown)}")
    protos = [p for p in PROTOTYPES if prototypes is None or p.name in prototypes]
    if prototypes is not None and len(protos) != len(set(prototypes)):
        raise ValueError(f"unknown prototype(s) in {list(prototypes)} (known: {', '.join(PROTOTYPE_NAMES)})")
    protos = [p for p in protos if p.n_species <= len(elements)]
    if not protos:
        raise ValueError("no prototype fits: give more elements or other prototypes")
    counts = {e: 0 for e in elements}
    out = []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        for _attempt in range(50):
            proto = protos[rng.integers(len(protos))]
            species = _pick_elements(proto.n_species, elements, counts, rng)
            scale = rng.uniform(0.95, 1.12)
            atoms = proto.build(species, scale)
            if len(atoms) > max_atoms:
                continue
            atoms = _supercell(atoms, proto, rng, max_atoms)
            atoms = _strain(atoms, proto, rng, strain)
            atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
            atoms.pbc = True
            if min_distance_ratio(atoms) > 0.7:
                break
        else:
            raise RuntimeError(f"structure {index}: no valid structure in 50 attempts (seed {seed})")
        for e in set(atoms.get_chemical_symbols()):
            counts[e] += 1
        formula = atoms.get_chemical_formula(mode="metal")
        sid = f"{formula}_{proto.name}_s{seed}_{index:05d}"
        meta = {"id": sid, "prototype": proto.name, "formula": formula, "n_atoms": len(atoms),
                "elements": sorted(set(atoms.get_chemical_symbols())), "dims": proto.dims, "seed": seed,
                "index": index}
        out.append((sid, atoms, meta))
    return out


def write_catalogue(structures, out_dir: str | os.PathLike) -> Path:
    """One extxyz per structure plus ``manifest.jsonl``; each file written atomically."""
    from ase.io import write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for sid, atoms, meta in structures:
        path = out / f"{sid}.extxyz"
        fd, tmp = tempfile.mkstemp(prefix=f".{sid}.", suffix=".extxyz", dir=out)
        os.close(fd)
        write(tmp, atoms, format="extxyz")
        os.replace(tmp, path)
        lines.append(json.dumps({**meta, "file": path.name}))
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=out)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out / "manifest.jsonl")
    return out / "manifest.jsonl"
