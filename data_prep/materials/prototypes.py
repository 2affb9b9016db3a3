"""Crystal prototypes with lattice constants from bond lengths; each builder takes (species, bond length).

Positions are ideal; the catalogue strains and rattles them afterwards. ``VACUUM`` is the empty space
across layers, slabs and molecules, larger than the 9.5 Å block radius so images do not interact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.data import atomic_numbers, reference_states
from ase.spacegroup import crystal

from .chemistry import covalent_radius

VACUUM = 12.0


def _cubic(symbols, scaled, a):
    return Atoms(symbols, scaled_positions=scaled, cell=np.eye(3) * a, pbc=True)


def rocksalt(sp, d):
    return bulk("".join(sp[:2]), "rocksalt", a=2 * d)


def zincblende(sp, d):
    return bulk("".join(sp[:2]), "zincblende", a=4 * d / math.sqrt(3))


def wurtzite(sp, d):
    a = d * math.sqrt(8 / 3)
    return bulk("".join(sp[:2]), "wurtzite", a=a, c=a * math.sqrt(8 / 3), u=0.375)


def cesium_chloride(sp, d):
    return bulk("".join(sp[:2]), "cesiumchloride", a=2 * d / math.sqrt(3))


def fluorite(sp, d):  # A X2: cation fcc, anions in the tetrahedral holes
    return bulk(f"{sp[0]}{sp[1]}2", "fluorite", a=4 * d / math.sqrt(3))


def antifluorite(sp, d):  # A2 X: Li2O-like, cations in the tetrahedral holes
    a = 4 * d / math.sqrt(3)
    return crystal([sp[1], sp[0]], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225,
                   cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def rutile(sp, d):  # A X2, TiO2; equatorial A-X bond = sqrt(2) u a
    u, c_a = 0.305, 0.644
    a = d / (math.sqrt(2) * u)
    return crystal([sp[0], sp[1]], [(0, 0, 0), (u, u, 0)], spacegroup=136, cellpar=[a, a, c_a * a, 90, 90, 90])


def nickel_arsenide(sp, d):  # A X, octahedral A between hcp X layers
    a = d * math.sqrt(2)
    return crystal([sp[0], sp[1]], [(0, 0, 0), (1 / 3, 2 / 3, 0.25)], spacegroup=194,
                   cellpar=[a, a, 1.4 * a, 90, 90, 120])


def perovskite(sp, d):  # A B X3 cubic; d is the B-X bond
    a = 2 * d
    return _cubic([sp[0], sp[1], sp[2], sp[2], sp[2]],
                  [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)], a)


def spinel(sp, d):  # A B2 X4 (MgAl2O4), primitive 14 atoms, u = 0.26 (origin choice 2); d is the B-X bond
    def build(a):
        return crystal([sp[0], sp[1], sp[2]], [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (0.26, 0.26, 0.26)],
                       spacegroup=227, setting=2, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)

    unit = build(1.0)
    b = [k for k, s in enumerate(unit.get_chemical_symbols()) if s == sp[1]][0]
    x = [k for k, s in enumerate(unit.get_chemical_symbols()) if s == sp[2]]
    return build(d / unit.get_distances(b, x, mic=True).min())


def heusler(sp, d):  # X2 Y Z (L2_1), primitive 4 atoms; d is the X-Y nearest-neighbour distance
    a = 4 * d / math.sqrt(3)
    return crystal([sp[0], sp[1], sp[2]], [(0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                   cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def half_heusler(sp, d):  # X Y Z (C1_b, MgAgAs): Y on the tetrahedral site bonded to X and Z (Ni in TiNiSn)
    a = 4 * d / math.sqrt(3)
    return crystal([sp[0], sp[1], sp[2]], [(0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (0, 0, 0)], spacegroup=216,
                   cellpar=[a, a, a, 90, 90, 90], primitive_cell=True)


def _hexagonal_layer(symbols, frac_xy, z, a, c=None):
    z = np.asarray(z, dtype=float)
    c = c if c is not None else VACUUM + np.ptp(z)
    cell = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
    pos = np.array([[x, y, 0.0] for x, y in frac_xy]) @ cell
    pos[:, 2] = z - z.min() + (VACUUM / 2 if c > VACUUM else 0.0)
    return Atoms(symbols, positions=pos, cell=cell, pbc=True)


def honeycomb_sheet(sp, d):  # graphene / h-BN-like monolayer
    return _hexagonal_layer([sp[0], sp[-1]], [(0, 0), (1 / 3, 2 / 3)], [0.0, 0.0], d * math.sqrt(3))


def _octahedral_layer_geometry(d):
    a = d * math.sqrt(2)
    return a, math.sqrt(max(d * d - a * a / 3, 0.5))


def ct_layer(sp, d):  # 1T (CdI2-type) M X2 monolayer: octahedral M
    a, h = _octahedral_layer_geometry(d)
    return _hexagonal_layer([sp[0], sp[1], sp[1]], [(0, 0), (1 / 3, 2 / 3), (2 / 3, 1 / 3)], [0.0, h, -h], a)


def ct_bulk(sp, d):  # 1T M X2 stacked, van der Waals gap from the X covalent radius
    a, h = _octahedral_layer_geometry(d)
    c = 2 * h + 2 * covalent_radius(sp[1]) + 1.2
    return _hexagonal_layer([sp[0], sp[1], sp[1]], [(0, 0), (1 / 3, 2 / 3), (2 / 3, 1 / 3)], [0.0, h, -h], a, c)


def h_layer(sp, d):  # 2H (MoS2-type) monolayer: trigonal prismatic M
    a = d * 1.31
    h = math.sqrt(max(d * d - a * a / 3, 0.5))
    return _hexagonal_layer([sp[0], sp[1], sp[1]], [(0, 0), (1 / 3, 2 / 3), (1 / 3, 2 / 3)], [0.0, h, -h], a)


def in_box(atoms: Atoms) -> Atoms:
    """A molecule centred in a box with ``VACUUM`` of space around it."""
    atoms = atoms.copy()
    span = np.ptp(atoms.positions, axis=0)
    atoms.set_cell(np.diag(span + VACUUM))
    atoms.positions += VACUUM / 2 - atoms.positions.min(axis=0)
    atoms.pbc = True
    return atoms


def dimer(sp, d):
    return in_box(Atoms([sp[0], sp[-1]], positions=[[0, 0, 0], [0, 0, d]]))


def g2_molecule(name: str) -> Atoms:
    """A molecule of ASE's G2 set at its reference geometry, in a box."""
    return in_box(molecule(name))


# --- elemental ground-state-like crystals -------------------------------------------------------------------

# Reference states ASE cannot build (complex or molecular crystals): experimental structures from the
# crystallographic literature (black P, alpha-Ga, alpha-B, trigonal Se/Te), or a small stand-in where the
# real cell is large (alpha-Mn: 58 atoms; gamma-Mn fcc instead; fibrous sulfur as trigonal chains).
_ELEMENTAL = {
    "B": dict(spacegroup=166, cellpar=[4.908, 4.908, 12.567, 90, 90, 120],
              basis=[(0.1187, -0.1187, 0.8911), (0.1967, -0.1967, 0.0243)]),
    "P": dict(spacegroup=64, cellpar=[3.314, 10.478, 4.376, 90, 90, 90], basis=[(0, 0.1017, 0.0806)]),
    "Ga": dict(spacegroup=64, cellpar=[4.519, 7.659, 4.526, 90, 90, 90], basis=[(0, 0.1549, 0.0810)]),
    "Se": dict(spacegroup=152, cellpar=[4.366, 4.366, 4.954, 90, 90, 120], basis=[(0.2254, 0, 1 / 3)]),
    "Te": dict(spacegroup=152, cellpar=[4.457, 4.457, 5.929, 90, 90, 120], basis=[(0.2633, 0, 1 / 3)]),
    "S": dict(spacegroup=152, cellpar=[3.90, 3.90, 4.50, 90, 90, 120], basis=[(0.2254, 0, 1 / 3)]),
}
_DIATOMIC = ("H", "N", "O", "F", "Cl", "Br", "I")


def elemental(symbol: str) -> Atoms:
    """The element's ground-state-like crystal (a dimer in a box for the diatomic molecular elements)."""
    if symbol in _DIATOMIC:
        ref = reference_states[atomic_numbers[symbol]] or {}
        d = ref.get("d") if ref.get("symmetry") == "diatom" else None
        return dimer([symbol], d or 2 * covalent_radius(symbol) * 0.96)
    if symbol in _ELEMENTAL:
        spec = _ELEMENTAL[symbol]
        return crystal([symbol] * len(spec["basis"]), spec["basis"], spacegroup=spec["spacegroup"],
                       cellpar=spec["cellpar"], primitive_cell=True)
    if symbol == "Mn":
        return bulk("Mn", "fcc", a=3.62)
    return bulk(symbol)


@dataclass(frozen=True)
class Prototype:
    """A structure type: name, build(species, bond length), site roles for charge balance, dimensionality."""

    name: str
    build: Callable[[tuple, float], Atoms]
    counts: tuple[int, ...]  # formula units per site kind
    bonding: str  # ionic | covalent | metallic
    dims: int = 3  # 3 bulk, 2 layer, 0 molecule


PROTOTYPES = {p.name: p for p in (
    Prototype("rocksalt", rocksalt, (1, 1), "ionic"),
    Prototype("zincblende", zincblende, (1, 1), "covalent"),
    Prototype("wurtzite", wurtzite, (1, 1), "covalent"),
    Prototype("cscl", cesium_chloride, (1, 1), "ionic"),
    Prototype("cscl_alloy", cesium_chloride, (1, 1), "metallic"),
    Prototype("fluorite", fluorite, (1, 2), "ionic"),
    Prototype("antifluorite", antifluorite, (2, 1), "ionic"),
    Prototype("rutile", rutile, (1, 2), "ionic"),
    Prototype("nias", nickel_arsenide, (1, 1), "covalent"),
    Prototype("perovskite", perovskite, (1, 1, 3), "ionic"),
    Prototype("spinel", spinel, (1, 2, 4), "ionic"),
    Prototype("heusler", heusler, (2, 1, 1), "metallic"),
    Prototype("half_heusler", half_heusler, (1, 1, 1), "covalent"),
    Prototype("honeycomb_2d", honeycomb_sheet, (1, 1), "covalent", 2),
    Prototype("1t_mx2_2d", ct_layer, (1, 2), "ionic", 2),
    Prototype("2h_mx2_2d", h_layer, (1, 2), "covalent", 2),
    Prototype("1t_mx2_bulk", ct_bulk, (1, 2), "ionic"),
    Prototype("dimer", dimer, (1, 1), "covalent", 0),
)}
