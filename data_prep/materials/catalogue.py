"""Deterministic, element-balanced selection of realistic structures ("materials" mode of ``deeph-prep generate``).

Structure ``index`` depends only on (seed, index) and the structures before it, so ``--n 100`` starts with the
same structures as ``--n 50`` and ids are stable. Each structure: a family (elemental, binary, ternary, layered,
molecule) drawn with fixed weights, a prototype of that family drawn uniformly, then the candidate compound
whose elements have appeared least so far; a bond-length scale, small strain and rattling. A fraction of the
structures is "complicated": a point defect, slab, bilayer, strongly strained or larger rattled cell made from
such a structure.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from ase import Atoms
from ase.data import covalent_radii, vdw_radii

from . import defects
from .candidates import Candidate, all_candidates
from .chemistry import covalent_radius, is_metal
from .prototypes import PROTOTYPES, elemental, g2_molecule

MAIN_GROUP = ("H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca",
              "Ga", "Ge", "As", "Se", "Br", "Rb", "Sr", "In", "Sn", "Sb", "Te", "I", "Cs", "Ba", "Tl", "Pb", "Bi")
TRANSITION_3D = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")
UNIVERSAL_MINI_ELEMENTS = MAIN_GROUP + TRANSITION_3D

FAMILY_WEIGHTS = {"elemental": 0.12, "binary": 0.42, "ternary": 0.2, "layered": 0.14, "molecule": 0.12}
# which families each complicated kind starts from
KIND_FAMILIES = {
    "vacancy": ("elemental", "binary", "ternary"), "substitution": ("elemental", "binary", "ternary"),
    "antisite": ("binary", "ternary"), "slab": ("elemental", "binary"), "bilayer": ("layered",),
    "strained": ("elemental", "binary", "ternary", "layered"), "supercell": ("elemental", "binary", "ternary"),
}
FOCUS = 0.5  # chance that a structure must contain the element seen least so far (keeps coverage even)
MIN_DISTANCE_RATIO = 0.7  # x the sum of covalent radii, periodic images included


def min_distance_ratio(atoms: Atoms) -> float:
    from ase.neighborlist import neighbor_list

    r = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, 2 * r.max(), self_interaction=False)
    return float((d / (r[i] + r[j])).min()) if len(d) else math.inf


def build(candidate: Candidate, scale: float) -> Atoms:
    """Ideal structure of a candidate with its bond lengths scaled by ``scale``."""
    if candidate.family == "molecule":
        return g2_molecule(candidate.prototype.split(":", 1)[1])
    if candidate.family == "elemental":
        atoms = elemental(candidate.species[0])
        if dims_of(candidate) == 3:
            atoms.set_cell(atoms.cell[:] * scale, scale_atoms=True)
        return atoms
    return PROTOTYPES[candidate.prototype].build(candidate.species, candidate.bond * scale)


def dims_of(candidate: Candidate) -> int:
    if candidate.family == "molecule":
        return 0
    if candidate.family == "elemental":
        return 0 if elemental(candidate.species[0]).cell.lengths().max() > 10 else 3
    return PROTOTYPES[candidate.prototype].dims


def perturb(atoms: Atoms, dims: int, rng, strain: float, rattle: float) -> Atoms:
    """A copy strained (symmetric, Gaussian ``strain``; in-plane only for ``dims`` 2, none for 0) and rattled."""
    atoms = atoms.copy()
    if dims > 0 and strain > 0:
        eps = rng.normal(scale=strain, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        if dims == 2:
            eps[2, :] = eps[:, 2] = 0.0  # keep the vacuum
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.pbc = True
    atoms.wrap()
    return atoms


def _neediest(elements, counts: Counter, rng) -> str:
    least = min(counts[e] for e in elements)
    tied = [e for e in elements if counts[e] == least]
    return tied[rng.integers(len(tied))]


def _need(c: Candidate, counts: Counter) -> float:
    return float(np.mean([1.0 / (1.0 + counts[e]) for e in c.elements])) ** 3


def _pick(cands: list[Candidate], counts: Counter, uses: Counter, rng) -> Candidate:
    w = np.array([_need(c, counts) / (1.0 + uses[c.key]) ** 2 for c in cands])
    return cands[rng.choice(len(cands), p=w / w.sum())]


def _dopant(atoms: Atoms, site_symbol: str, elements, counts: Counter, rng) -> str:
    """An element of the set not in the structure, of the same metal/non-metal kind and similar size."""
    r0 = covalent_radius(site_symbol)
    present = set(atoms.get_chemical_symbols())
    ok = [e for e in elements if e not in present and is_metal(e) == is_metal(site_symbol)
          and abs(covalent_radius(e) - r0) < 0.25 * r0]
    if not ok:
        raise ValueError(f"no dopant for {site_symbol}")
    w = np.array([1.0 / (1.0 + counts[e]) ** 3 for e in ok])
    return ok[rng.choice(len(ok), p=w / w.sum())]


def _complicate(kind: str, atoms: Atoms, cand: Candidate, elements, counts: Counter, rng):
    if kind == "vacancy":
        return defects.vacancy(atoms, rng)
    if kind == "substitution":
        site = atoms[int(rng.integers(len(atoms)))].symbol
        return defects.substitution(atoms, rng, _dopant(atoms, site, elements, counts, rng))
    if kind == "antisite":
        return defects.antisite(atoms, rng)
    if kind == "slab":
        return defects.slab(atoms, rng)
    if kind == "bilayer":
        outer = atoms.numbers[int(np.argmax(atoms.positions[:, 2]))]  # van der Waals contact of the outer atoms
        return defects.bilayer(atoms, rng, 2 * float(vdw_radii[outer]) * rng.uniform(0.92, 1.0))
    if kind == "strained":
        return defects.strained(atoms, rng)
    return defects.larger_cell(atoms, rng)


def generate_materials(n: int, seed: int = 0, elements=None, *, complicated_fraction: float = 0.1,
                       strain: float = 0.02, rattle: float = 0.03, max_atoms: int = 32):
    """``n`` structures as (id, Atoms, metadata), deterministic in (seed, elements, options)."""
    elements = tuple(elements or UNIVERSAL_MINI_ELEMENTS)
    pool = all_candidates(elements)
    counts: Counter = Counter()
    uses: Counter = Counter()
    out = []
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        complicated = rng.random() < complicated_fraction
        for _attempt in range(100):
            kind = str(rng.choice(list(KIND_FAMILIES))) if complicated else None
            families = [f for f in FAMILY_WEIGHTS if pool.get(f) and (kind is None or f in KIND_FAMILIES[kind])]
            if not families:
                continue
            w = np.array([FAMILY_WEIGHTS[f] for f in families])
            family = families[rng.choice(len(families), p=w / w.sum())]
            cands = pool[family]
            if kind == "bilayer":
                cands = [c for c in cands if dims_of(c) == 2]
            elif kind is not None:
                cands = [c for c in cands if dims_of(c) == 3 and (kind != "slab" or len(build(c, 1.0)) <= 4)]
            if not cands:
                continue
            protos = sorted({c.prototype for c in cands}) if family != "molecule" else ["molecule"]
            proto = protos[rng.integers(len(protos))]
            cands = [c for c in cands if proto == "molecule" or c.prototype == proto]
            if rng.random() < FOCUS:
                cands = [c for c in cands if _neediest(elements, counts, rng) in c.elements] or cands
            cand = _pick(cands, counts, uses, rng)
            atoms = build(cand, rng.uniform(0.97, 1.04))
            dims = dims_of(cand)
            info = {}
            try:
                if kind is not None:
                    atoms, info = _complicate(kind, atoms, cand, elements, counts, rng)
                    dims = 2 if kind in ("slab", "bilayer") else dims
                atoms = perturb(atoms, dims, rng, strain if kind is None else 0.0,
                                rattle if kind is None else 2 * rattle)
            except ValueError:
                continue
            if len(atoms) <= max_atoms and min_distance_ratio(atoms) > MIN_DISTANCE_RATIO:
                break
        else:
            raise RuntimeError(f"structure {index}: no valid structure in 100 attempts (seed {seed})")
        counts.update(set(atoms.get_chemical_symbols()))
        uses[cand.key] += 1
        name = cand.prototype.replace("g2:", "molecule-") if kind is None else f"{kind}-{cand.prototype}"
        sid, meta = catalogue_entry(atoms, cand, name, seed, index, dims, kind=kind, defect=info or None)
        out.append((sid, atoms, meta))
    return out


def catalogue_entry(atoms: Atoms, cand: Candidate, name: str, seed: int, index: int, dims: int, *,
                    kind: str | None = None, defect: dict | None = None, **extra) -> tuple[str, dict]:
    """(id, manifest metadata) of a catalogue structure: id ``<formula>_<name>_s<seed>_<index>``."""
    symbols = atoms.get_chemical_symbols()
    formula = atoms.get_chemical_formula(mode="metal")
    sid = f"{formula}_{name}_s{seed}_{index:05d}"
    return sid, {
        "id": sid, "mode": "materials", "family": cand.family, "prototype": cand.prototype,
        "group": "complicated" if kind else "regular", "kind": kind, "parent": "".join(cand.species) if kind else None,
        "formula": formula, "n_atoms": len(atoms), "elements": sorted(set(symbols)), "dims": dims,
        "oxidation_states": dict(zip(cand.species, cand.states)) if cand.states else None, "defect": defect,
        "seed": seed, "index": index, **extra}


def molecule_structures(cands: list[Candidate], seed: int, start: int = 0,
                        rattle: float = 0.03) -> list[tuple[str, Atoms, dict]]:
    """(id, Atoms, metadata) as ``generate_materials`` gives them for each molecule candidate, rattled like the
    catalogue's molecules (seeded per index)."""
    out = []
    for index, cand in enumerate(cands, start):
        atoms = perturb(build(cand, 1.0), 0, np.random.default_rng([seed, index]), 0.0, rattle)
        sid, meta = catalogue_entry(atoms, cand, cand.prototype.replace("g2:", "molecule-"), seed, index, 0)
        out.append((sid, atoms, meta))
    return out
