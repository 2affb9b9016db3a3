"""Ordered 1:1 alloys of two catalogue binaries of one prototype that share an element on the same site, with
equal oxidation states: AlAs + GaAs -> AlGaAs2, NaCl + NaBr -> Na2ClBr, CaF2 + SrF2 -> CaSrF4.

In the catalogue most element pairs are bonded in one chemical system only (docs/data.md). Holding out that
system (the composition split) therefore holds out the bond itself. An alloy bonds both end members' pairs in a
third system. Geometry: the first end member's primitive cell at the mean of the two bond lengths (Vegard),
doubled along its first lattice vector (in-plane for layers), with the mixed site's atoms of the second copy
replaced. Charge balance is that of the end members.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from ase import Atoms

from .candidates import Candidate, binary_candidates, layered_candidates
from .catalogue import MIN_DISTANCE_RATIO, build, catalogue_entry, min_distance_ratio, perturb
from .prototypes import PROTOTYPES

# Families in the order they were added: a later family's pairs are listed after the earlier ones', so the
# indices (and ids) of alloys already in a catalogue do not change.
ALLOY_FAMILIES = (("rocksalt", "zincblende", "wurtzite", "cscl"),
                  ("fluorite", "antifluorite", "rutile", "1t_mx2_bulk", "1t_mx2_2d", "2h_mx2_2d"))
MAX_BOND_MISMATCH = 0.12  # end members' bond lengths within 12 %: the mixed cell is not strained apart


def alloy_pairs(elements) -> list[tuple[Candidate, Candidate]]:
    """End-member pairs (a, b) of the binaries and layers of ``elements`` that form an ordered alloy."""
    compounds = binary_candidates(elements) + layered_candidates(elements)
    pairs = []
    for family in ALLOY_FAMILIES:
        for a, b in itertools.combinations([c for c in compounds if c.prototype in family], 2):
            shared = [i for i in range(2) if a.species[i] == b.species[i]]
            if (a.prototype == b.prototype and a.states == b.states and len(shared) == 1
                    and abs(a.bond - b.bond) <= MAX_BOND_MISMATCH * min(a.bond, b.bond)):
                pairs.append((a, b))
    return pairs


def _mixed_site(a: Candidate, b: Candidate) -> int:
    return next(i for i in range(2) if a.species[i] != b.species[i])


def ordered_alloy(a: Candidate, b: Candidate) -> Atoms:
    """The ideal 1:1 ordered alloy of end members ``a`` and ``b`` (``alloy_pairs``)."""
    mixed = _mixed_site(a, b)
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
        dims = PROTOTYPES[a.prototype].dims
        atoms = perturb(ordered_alloy(a, b), dims, np.random.default_rng([seed, index]), strain, rattle)
        if min_distance_ratio(atoms) <= MIN_DISTANCE_RATIO:
            continue
        mixed = _mixed_site(a, b)
        prototype = f"{a.prototype}_alloy"
        if prototype in PROTOTYPES:  # cscl_alloy names the B2 intermetallics
            prototype = f"{a.prototype}_ordered_alloy"
        alloy = Candidate("ternary", prototype, a.species + (b.species[mixed],),
                          0.5 * (a.bond + b.bond), a.states + (b.states[mixed],))
        sid, meta = catalogue_entry(atoms, alloy, alloy.prototype, seed, index, dims,
                                    end_members=["".join(a.species), "".join(b.species)])
        out.append((sid, atoms, meta))
    return out
