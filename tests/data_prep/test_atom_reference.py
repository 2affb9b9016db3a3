"""Isolated-atom on-site reference (``data_prep.dft.atom_reference``): the shipped table is what the atom
calculation gives, it is spherical, it covers the recipe's elements with their shells, and its levels are
ordered as atomic physics says."""

import json

import numpy as np
import pytest

from data_prep.basis import element_symbol
from data_prep.dft import DFTSettings, supported_elements
from data_prep.dft.atom_reference import (SHIPPED, atom_levels, expand_shell_levels, onsite_table, recipe_key,
                                          shell_levels)
from data_prep.dft.structure import element_basis

TABLE = SHIPPED / recipe_key(DFTSettings().recipe())


def shipped():
    return json.loads(TABLE.read_text())


@pytest.mark.parametrize("symbol", ["Li", "Si"])
def test_shipped_table_is_the_atom_calculation(symbol):
    shells, levels = atom_levels(symbol)
    entry = shipped()["elements"][symbol]
    assert entry["shells"] == shells
    np.testing.assert_allclose(entry["levels"], levels, atol=2e-5)


def test_levels_follow_atomic_shell_order():
    el = shipped()["elements"]
    # Si 3s below 3p; Li's 1s semicore tens of eV below its 2s valence; O 2p below C 2p (electronegativity)
    assert el["Si"]["levels"][0][0] < el["Si"]["levels"][1][1] < 0
    assert el["Li"]["levels"][0][0] < el["Li"]["levels"][1][1] - 30
    assert el["O"]["levels"][1][1] < el["C"]["levels"][1][1]


def test_table_covers_the_recipe_with_its_shells():
    el = shipped()["elements"]
    settings = DFTSettings()
    assert shipped()["recipe"] == {k: getattr(settings, k) for k in ("basis", "pseudo", "xc")}
    assert set(el) == {element_symbol(z) for z in supported_elements(settings)}
    for sym in ("H", "O", "Fe", "Bi"):
        basis = element_basis(settings.basis, sym)
        assert len(el[sym]["shells"]) == len(el[sym]["levels"])
        assert sum(2 * l + 1 for l in el[sym]["shells"]) == sum(
            (2 * b[0] + 1) * (len(b[1]) - 1) for b in basis), sym


def test_blocks_are_spherical_and_round_trip():
    shells = shipped()["elements"]["Fe"]["shells"]  # s, s, p, d: an s-s' coupling
    levels = np.asarray(shipped()["elements"]["Fe"]["levels"])
    h = expand_shell_levels(levels, shells)
    assert h.shape == (10, 10) and np.array_equal(h, h.T)
    np.testing.assert_array_equal(shell_levels(h, shells), levels)
    assert levels[0][1] != 0 and levels[0][2] == 0  # same l couple, different l do not
    np.testing.assert_array_equal(h[5:10, 5:10], levels[3][3] * np.eye(5))
    table = onsite_table(DFTSettings().recipe(), [26, 14])
    np.testing.assert_array_equal(table[26], h)


def test_a_recipe_without_a_shipped_table_is_computed_with_a_warning():
    recipe = {**DFTSettings().recipe(), "xc": "lda,vwn"}
    with pytest.warns(UserWarning, match="no shipped isolated-atom reference for H"):
        table = onsite_table(recipe, [1])
    pbe = onsite_table(DFTSettings().recipe(), [1])[1]
    assert table[1].shape == (1, 1) and table[1][0, 0] != pytest.approx(pbe[0, 0], abs=1e-3)
