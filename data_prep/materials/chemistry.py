"""Oxidation states, radii and electronegativities from pymatgen; charge balance of site assignments.

Bond lengths: ionic compounds use Shannon crystal radii of the ions (pymatgen ``Species.ionic_radius``),
covalent ones ASE's covalent radii, intermetallics pymatgen's metallic radii; each falls back to the
covalent radius where the table has no entry.
"""

from __future__ import annotations

import functools
import warnings

from ase.data import atomic_numbers, covalent_radii


@functools.lru_cache(maxsize=None)
def _element(symbol: str):
    from pymatgen.core import Element

    return Element(symbol)


@functools.lru_cache(maxsize=None)
def oxidation_states(symbol: str) -> tuple[int, ...]:
    """pymatgen's common oxidation states (the conservative list: no C+2 or Co+1), sorted, without 0."""
    return tuple(sorted(q for q in _element(symbol).common_oxidation_states if q != 0))


@functools.lru_cache(maxsize=None)
def is_metal(symbol: str) -> bool:
    return bool(_element(symbol).is_metal)


def cation_states(symbol: str) -> tuple[int, ...]:
    return tuple(q for q in oxidation_states(symbol) if q > 0)


# carbon as an anion only in carbides (SiC, TiC): pymatgen also lists -1..-3 for organic carbon
_ANION_ONLY = {"C": (-4,)}


def anion_states(symbol: str) -> tuple[int, ...]:
    return _ANION_ONLY.get(symbol) or tuple(q for q in oxidation_states(symbol) if q < 0)


@functools.lru_cache(maxsize=None)
def electronegativity(symbol: str) -> float:
    x = _element(symbol).X
    return float(x) if x == x else 0.0  # pymatgen gives NaN for a few noble gases


def covalent_radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


@functools.lru_cache(maxsize=None)
def ionic_radius(symbol: str, charge: int) -> float | None:
    """Shannon crystal radius (Å) of the ion, or None where pymatgen has none."""
    from pymatgen.core import Species

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = Species(symbol, charge).ionic_radius
        except (ValueError, KeyError):
            return None
    return float(r) if r else None


@functools.lru_cache(maxsize=None)
def metallic_radius(symbol: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No data available for metallic_radius" for metalloids
        r = _element(symbol).metallic_radius
    return float(r) if r else covalent_radius(symbol)


def ionic_bond(cation: str, q_cation: int, anion: str, q_anion: int) -> float:
    """Cation-anion distance (Å): sum of crystal radii, or of covalent radii if either ion has no entry."""
    rc, ra = ionic_radius(cation, q_cation), ionic_radius(anion, q_anion)
    if rc is None or ra is None:
        return covalent_radius(cation) + covalent_radius(anion)
    return rc + ra


def radius_ratio(cation: str, q_cation: int, anion: str, q_anion: int) -> float | None:
    """r_cation / r_anion (Pauling's coordination rule), None without tabulated radii."""
    rc, ra = ionic_radius(cation, q_cation), ionic_radius(anion, q_anion)
    return None if rc is None or ra is None else rc / ra


def balanced_states(symbols, counts, signs):
    """Oxidation-state assignments (one per site) with the given signs summing to zero, in a fixed order.

    ``signs[k]`` is +1 (cation site) or -1 (anion site); the anion must be more electronegative than every
    cation, so e.g. NaCl is found and ClNa is not.
    """
    options = [cation_states(s) if sign > 0 else anion_states(s) for s, sign in zip(symbols, signs)]
    x_cat = [electronegativity(s) for s, sign in zip(symbols, signs) if sign > 0]
    x_an = [electronegativity(s) for s, sign in zip(symbols, signs) if sign < 0]
    if x_cat and x_an and max(x_cat) >= min(x_an):
        return []
    out = []

    def walk(k, chosen):
        if k == len(symbols):
            if sum(q * n for q, n in zip(chosen, counts)) == 0:
                out.append(tuple(chosen))
            return
        for q in options[k]:
            walk(k + 1, chosen + [q])

    walk(0, [])
    return out
