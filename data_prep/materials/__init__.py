"""A chemically sensible structure catalogue for the universal database ("materials" mode).

``chemistry``: oxidation states, radii and charge balance (pymatgen); ``prototypes``: crystal builders with
bond lengths from those radii; ``defects``: the complicated cases (point defects, slabs, bilayers, larger
strained cells); ``catalogue``: the deterministic, element-balanced selection.
"""

from .catalogue import UNIVERSAL_MINI_ELEMENTS, generate_materials

__all__ = ["UNIVERSAL_MINI_ELEMENTS", "generate_materials"]
