"""Which element combinations each prototype admits: charge balance, Pauling radius ratios, Goldschmidt
tolerance and valence-electron counts, so the catalogue holds compounds a chemist would recognise."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .chemistry import (balanced_states, covalent_radius, ionic_bond, ionic_radius, is_metal, metallic_radius,
                        radius_ratio)
from .prototypes import PROTOTYPES

ALKALI = ("Li", "Na", "K", "Rb", "Cs")
ALKALINE_EARTH = ("Be", "Mg", "Ca", "Sr", "Ba")
TM3D = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")
CHALCOGENS = ("O", "S", "Se", "Te")
HALOGENS = ("F", "Cl", "Br", "I")
PNICTOGENS = ("N", "P", "As", "Sb", "Bi")
# cations found in tetrahedral coordination (zincblende/wurtzite/2D honeycomb compounds)
TETRAHEDRAL = ("Be", "B", "Al", "Ga", "In", "Si", "Ge", "Zn", "Mn", "Mg")
LAYERED_CHALCOGENIDE_M = ("Ti", "V", "Cr", "Sn")  # 1T MX2 (TiS2, VSe2, SnS2)
LAYERED_HALIDE_M = ("Mg", "Ca", "Ti", "V", "Mn", "Fe", "Co", "Ni", "Zn", "Ge", "Pb")  # CdI2-type MX2
HEUSLER_X, HEUSLER_Y = ("Mn", "Fe", "Co", "Ni", "Cu"), ("Sc", "Ti", "V", "Cr", "Mn", "Fe")
HEUSLER_Z = ("Al", "Ga", "In", "Si", "Ge", "Sn", "Sb")
# B2 (CsCl-type) intermetallics: a late transition metal with an sp metal or early transition metal (NiAl, CuZn,
# FeTi, CoBe, ...)
B2_LATE, B2_PARTNER = ("Fe", "Co", "Ni", "Cu", "Mn"), ("Al", "Ga", "Zn", "Be", "Mg", "Ti", "Sc", "V")
GROUP_VALENCE = {"Sc": 3, "Ti": 4, "V": 5, "Fe": 8, "Co": 9, "Ni": 10, "Ge": 4, "Sn": 4, "Sb": 5, "Bi": 5}
MOLECULES = ("H2O", "NH3", "CH4", "SiH4", "PH3", "SH2", "HCl", "HF", "CO2", "CO", "C2H2", "C2H4", "C2H6",
             "CH3OH", "HCN", "H2CO", "SiF4", "BF3", "BCl3", "AlCl3", "CCl4", "LiF", "NaCl", "LiH", "SO2",
             "CS2", "OCS", "N2H4", "H2O2", "CH3Cl", "PF3", "NF3", "CF4", "SiCl4", "Li2", "Na2", "HCOOH",
             "CH3SH", "CH3CN", "SiO", "P2", "S2", "BeH", "CH3NO2", "ClF3", "F2O", "N2O", "H2CCHCl")


@dataclass(frozen=True)
class Candidate:
    family: str  # elemental | binary | ternary | layered | molecule
    prototype: str
    species: tuple[str, ...]
    bond: float  # Å, the prototype's reference bond length
    states: tuple[int, ...] = ()

    @property
    def elements(self) -> frozenset:
        return frozenset(self.species)

    @property
    def key(self) -> str:
        return f"{self.prototype}:{'-'.join(self.species)}"


def _ratio_ok(cation, qc, anion, qa, lo, hi) -> bool:
    r = radius_ratio(cation, qc, anion, qa)
    return r is None or lo <= r <= hi


def _ionic_pairs(elements, counts, lo, hi, cations=None, anions=None):
    """(cation, anion, q_cation, q_anion): charge balanced, radius ratio in [lo, hi]; cations are metals
    unless ``cations`` lists them."""
    for c, a in itertools.permutations(sorted(elements), 2):
        if (cations and c not in cations) or (not cations and not is_metal(c)) or (anions and a not in anions):
            continue
        for qc, qa in balanced_states((c, a), counts, (1, -1)):
            if _ratio_ok(c, qc, a, qa, lo, hi):
                yield c, a, qc, qa
                break


def binary_candidates(elements):
    el = set(elements)
    out = []
    for c, a, qc, qa in _ionic_pairs(el, (1, 1), 0.41, 1.2, anions=CHALCOGENS + HALOGENS + ("N", "H", "C")):
        if c in ("Be", "Al", "Ga", "In", "Zn", "Cu"):  # tetrahedral formers: zincblende/wurtzite instead
            continue
        if (a == "N" and c not in TM3D) or (a == "C" and c != "Ti") or (a == "H" and c not in ALKALI):
            continue  # nitrides and carbides of transition metals, hydrides of alkali metals
        out.append(Candidate("binary", "rocksalt", (c, a), ionic_bond(c, qc, a, qa), (qc, qa)))
    for c, a, qc, qa in _ionic_pairs(el, (1, 1), 0.0, 10.0, cations=TETRAHEDRAL,
                                     anions=CHALCOGENS + HALOGENS + PNICTOGENS + ("C",)):
        if (c == "Mg" and a not in ("Se", "Te")) or (c in ("Si", "Ge")) != (a == "C") or (c == "Mn" and a == "O"):
            continue
        d = covalent_radius(c) + covalent_radius(a)
        out += [Candidate("binary", p, (c, a), d, (qc, qa)) for p in ("zincblende", "wurtzite")]
    for c, a, qc, qa in _ionic_pairs(el, (1, 1), 0.73, 1.3, cations=ALKALI + ("Tl",), anions=HALOGENS):
        out.append(Candidate("binary", "cscl", (c, a), ionic_bond(c, qc, a, qa), (qc, qa)))
    for c, a, qc, qa in _ionic_pairs(el, (1, 2), 0.75, 1.3, cations=ALKALINE_EARTH + ("Pb",), anions=HALOGENS):
        out.append(Candidate("binary", "fluorite", (c, a), ionic_bond(c, qc, a, qa), (qc, qa)))
    for c, a, qc, qa in _ionic_pairs(el, (2, 1), 0.3, 1.3, cations=ALKALI, anions=CHALCOGENS):
        out.append(Candidate("binary", "antifluorite", (c, a), ionic_bond(c, qc, a, qa), (qc, qa)))
    rutile_cations = tuple(e for e in el if is_metal(e)) + ("Si", "Ge")
    for c, a, qc, qa in _ionic_pairs(el, (1, 2), 0.38, 0.75, cations=rutile_cations, anions=("O", "F", "H")):
        if (qc == 4 and a == "O") or (a == "F" and c in TM3D + ("Mg", "Zn")) or (a == "H" and c == "Mg"):
            out.append(Candidate("binary", "rutile", (c, a), ionic_bond(c, qc, a, qa), (qc, qa)))
    # NiAs-type transition-metal chalcogenides and pnictides are covalent-metallic: no formal charge balance
    for c, a in itertools.product(sorted(el & set(TM3D[1:9])), sorted(el & {"S", "Se", "Te", "As", "Sb"})):
        out.append(Candidate("binary", "nias", (c, a), covalent_radius(c) + covalent_radius(a)))
    for x, y in itertools.product(sorted(el & set(B2_LATE)), sorted(el & set(B2_PARTNER))):
        if x != y:
            out.append(Candidate("binary", "cscl_alloy", (x, y), 0.97 * (metallic_radius(x) + metallic_radius(y))))
    return out


def ternary_candidates(elements):
    el = set(elements)
    out = []
    for a, b, x in itertools.permutations(el, 3):
        if x not in ("O", "F", "Cl", "Br", "I") or not is_metal(a) or not (is_metal(b) or b in ("Si", "Ge")):
            continue
        for qa, qb, qx in balanced_states((a, b, x), (1, 1, 3), (1, 1, -1)):
            ra, rb, rx = ionic_radius(a, qa), ionic_radius(b, qb), ionic_radius(x, qx)
            if None in (ra, rb, rx) or ra < rb or b == "Li" or not 0.41 <= rb / rx <= 0.75:
                continue
            t = (ra + rx) / (2 ** 0.5 * (rb + rx))
            if 0.85 <= t <= 1.06:
                out.append(Candidate("ternary", "perovskite", (a, b, x), rb + rx, (qa, qb, qx)))
                break
        if x in ("O", "S", "Se"):
            for qa, qb, qx in balanced_states((a, b, x), (1, 2, 4), (1, 1, -1)):
                spinel_ok = (qa, qb) == (2, 3) and is_metal(a) and is_metal(b) and a not in ("Be", "Sn", "Pb")
                if spinel_ok and _ratio_ok(a, qa, x, qx, 0.3, 0.8) and _ratio_ok(b, qb, x, qx, 0.38, 0.8):
                    out.append(Candidate("ternary", "spinel", (a, b, x), ionic_bond(b, qb, x, qx), (qa, qb, qx)))
                    break
    for x, y, z in itertools.product(HEUSLER_X, HEUSLER_Y, HEUSLER_Z):
        if x != y and {x, y, z} <= el:
            d = 0.5 * (2 * metallic_radius(x) + metallic_radius(y) + metallic_radius(z))
            out.append(Candidate("ternary", "heusler", (x, y, z), d))
    for x, y, z in itertools.permutations(el, 3):  # half-Heuslers: 8-electron (LiZnAs) and 18-electron (TiNiSn)
        eight = x in ("Li", "Na") and y in ("Mg", "Zn") and z in PNICTOGENS
        eighteen = (x in ("Sc", "Ti", "V") and y in ("Fe", "Co", "Ni") and z in ("Ge", "Sn", "Sb", "Bi")
                    and GROUP_VALENCE[x] + GROUP_VALENCE[y] + GROUP_VALENCE[z] == 18)
        if eight or eighteen:  # Y-X and Y-Z bonds: covalent (LiZnAs) or metallic (TiNiSn) radii
            r = covalent_radius if eight else metallic_radius
            d = r(y) + 0.5 * (r(x) + r(z))
            out.append(Candidate("ternary", "half_heusler", (x, y, z), d))
    return out


def layered_candidates(elements):
    el = set(elements)
    out = []
    if "C" in el:
        out.append(Candidate("layered", "honeycomb_2d", ("C", "C"), 0.94 * 2 * covalent_radius("C")))
    for c, a, qc, qa in _ionic_pairs(el, (1, 1), 0.0, 10.0, cations=("B", "Al", "Ga", "Be", "Zn", "Si", "In"),
                                     anions=("N", "O", "C", "P")):  # h-BN-like sheets (BN, AlN, ZnO, SiC)
        out.append(Candidate("layered", "honeycomb_2d", (c, a), 0.94 * (covalent_radius(c) + covalent_radius(a)),
                             (qc, qa)))
    for c, a, qc, qa in _ionic_pairs(el, (1, 2), 0.3, 1.0, anions=("S", "Se", "Te", "Cl", "Br", "I")):  # metals only
        if qc == 2 and a in ("Cl", "Br", "I") and c in LAYERED_HALIDE_M:
            d = ionic_bond(c, qc, a, qa)
            out += [Candidate("layered", p, (c, a), d, (qc, qa)) for p in ("1t_mx2_2d", "1t_mx2_bulk")]
    for c, a in itertools.product(sorted(el & set(LAYERED_CHALCOGENIDE_M)), sorted(el & {"S", "Se", "Te"})):
        d = ionic_bond(c, 4, a, -2)
        out += [Candidate("layered", p, (c, a), d, (4, -2)) for p in ("1t_mx2_2d", "1t_mx2_bulk")]
    for c in sorted(el & {"Ti", "V", "Cr"}):
        for a in sorted(el & {"S", "Se", "Te"}):
            out.append(Candidate("layered", "2h_mx2_2d", (c, a), covalent_radius(c) + covalent_radius(a), (4, -2)))
    return out


def molecule_candidates(elements):
    from ase.build import molecule

    el = set(elements)
    return [Candidate("molecule", f"g2:{name}", tuple(molecule(name).get_chemical_symbols()), 0.0)
            for name in MOLECULES if set(molecule(name).get_chemical_symbols()) <= el]


def bond_molecule_candidates(elements, max_atoms: int = 10):
    """Closed-shell molecules of ASE's G2 set beyond ``MOLECULES`` (CH2Cl2, HOCl, CH3SiH3, COF2, ...): more
    chemical systems in which the catalogue's covalent bonds occur. Radicals and carbenes are left out: the
    recipe is spin-restricted."""
    from ase.build import molecule
    from ase.collections import g2

    el = set(elements)
    out = []
    for name in g2.names:
        m = molecule(name)
        closed_shell = not m.get_initial_magnetic_moments().any() and m.numbers.sum() % 2 == 0 and "_s" not in name
        if name not in MOLECULES and 2 <= len(m) <= max_atoms and closed_shell and set(m.get_chemical_symbols()) <= el:
            out.append(Candidate("molecule", f"g2:{name}", tuple(m.get_chemical_symbols()), 0.0))
    return out


def elemental_candidates(elements):
    return [Candidate("elemental", "elemental", (e,), 0.0) for e in sorted(elements)]


def all_candidates(elements) -> dict[str, list[Candidate]]:
    """Family -> candidates, in a deterministic order."""
    fams = {
        "elemental": elemental_candidates(elements),
        "binary": binary_candidates(elements),
        "ternary": ternary_candidates(elements),
        "layered": layered_candidates(elements),
        "molecule": molecule_candidates(elements),
    }
    return {k: sorted(v, key=lambda c: c.key) for k, v in fams.items()}


def prototype_of(candidate: Candidate):
    return PROTOTYPES.get(candidate.prototype)
