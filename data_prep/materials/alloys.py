"""Ordered 1:1 alloys of two catalogue binaries of one prototype that share an element on the same site, with
equal oxidation states: AlAs + GaAs -> AlGaAs2, NaCl + NaBr -> Na2ClBr.

In the catalogue most element pairs are bonded in one chemical system only (docs/data.md). Holding out that
system (the composition split) therefore holds out the bond itself. An alloy bonds both end members' pairs in a
third system. Geometry: the first end member's primitive cell at the mean of the two bond lengths (Vegard),
doubled along its first lattice vector, with the mixed site's atoms of the second copy replaced. Charge balance
is that of the end members.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from ase import Atoms

from .candidates import Candidate, binary_candidates
from .catalogue import MIN_DISTANCE_RATIO, _perturb, build, min_distance_ratio

ALLOY_PROTOTYPES = ("rocksalt", "zincblende", "wurtzite", "cscl")
MAX_BOND_MISMATCH = 0.12  # end members' bond lengths within 12 %: the mixed cell is not strained apart


def alloy_pairs(elements) -> list[tuple[Candidate, Candidate]]:
    """End-member pairs (a, b) of the binaries of ``elements`` that form an ordered alloy."""
    binaries = [c for c in binary_candidates(elements) if c.prototype in ALLOY_PROTOTYPES]
    pairs = []
    for a, b in itertools.combinations(binaries, 2):
        shared = [i for i in range(2) if a.species[i] == b.species[i]]
        if (a.prototype == b.prototype and a.states == b.states and len(shared) == 1
                and abs(a.bond - b.bond) <= MAX_BOND_MISMATCH * min(a.bond, b.bond)):
            pairs.append((a, b))
    return pairs


def ordered_alloy(a: Candidate, b: Candidate) -> Atoms:
    """The ideal 1:1 ordered alloy of end members ``a`` and ``b`` (``alloy_pairs``)."""
    mixed = next(i for i in range(2) if a.species[i] != b.species[i])
    cell = build(replace(a, bond=0.5 * (a.bond + b.bond)), 1.0)
    atoms = cell.repeat((2, 1, 1))
    symbols = atoms.get_chemical_symbols()
    for k in range(len(cell), len(atoms)):
        if symbols[k] == a.species[mixed]:
            symbols[k] = b.species[mixed]
    atoms.set_chemical_symbols(symbols)
    return atoms


def alloy_structures(pairs: list[tuple[Candidate, Candidate]], seed: int, start: int = 0,
                     strain: float = 0.02, rattle: float = 0.03) -> list[tuple[str, Atoms, dict]]:
    """(id, Atoms, metadata) as ``generate_materials`` gives them, for each end-member pair, perturbed like the
    catalogue's regular structures (seeded per index); ids ``<formula>_<prototype>_alloy_s<seed>_<index>``."""
    out = []
    for index, (a, b) in enumerate(pairs, start):
        atoms = _perturb(ordered_alloy(a, b), 3, np.random.default_rng([seed, index]), strain, rattle)
        if min_distance_ratio(atoms) <= MIN_DISTANCE_RATIO:
            continue
        symbols = atoms.get_chemical_symbols()
        formula = atoms.get_chemical_formula(mode="metal")
        prototype = f"{a.prototype}_alloy"
        sid = f"{formula}_{prototype}_s{seed}_{index:05d}"
        states = {**dict(zip(a.species, a.states)), **dict(zip(b.species, b.states))}
        out.append((sid, atoms, {
            "id": sid, "mode": "materials", "family": "ternary", "prototype": prototype, "group": "regular",
            "kind": None, "parent": None, "formula": formula, "n_atoms": len(atoms), "elements": sorted(set(symbols)),
            "dims": 3, "oxidation_states": states, "defect": None, "seed": seed, "index": index,
            "end_members": ["".join(a.species), "".join(b.species)]}))
    return out
