"""Nearest-neighbour bonds per element pair (data_prep.bonds): counted on real neighbour graphs, tabulated over
structures, and a new structure's unseen or compressed bonds named."""

import numpy as np
import pytest
from ase.build import bulk

from data_prep.bonds import bond_table, structure_bonds, unfamiliar_bonds


def bonds_of(atoms):
    return structure_bonds(atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc)


def test_first_shell_bonds_count_each_bond_once():
    # diamond Si: 2 atoms with 4 neighbours each, 4 bonds per cell, all 5.43·√3/4 long
    si = bonds_of(bulk("Si", "diamond", a=5.43))
    assert list(si) == ["Si-Si"]
    n, lo, hi = si["Si-Si"]
    assert n == 4 and lo == pytest.approx(5.43 * np.sqrt(3) / 4) and hi == pytest.approx(lo)
    # rocksalt LiH: 6 Li-H bonds per formula unit; Li-Li and H-H (a/√2 = 1.41x) are beyond the first shell
    lih = bonds_of(bulk("LiH", "rocksalt", a=4.0))
    assert lih == {"H-Li": (6, pytest.approx(2.0), pytest.approx(2.0))}
    # a 2x1x1 supercell has twice the bonds at the same lengths
    assert bonds_of(bulk("Si", "diamond", a=5.43).repeat((2, 1, 1)))["Si-Si"][0] == 8


def test_bond_table_and_unfamiliar_bonds():
    table = bond_table([bonds_of(bulk("Si", "diamond", a=5.43)), bonds_of(bulk("Si", "diamond", a=5.6)),
                        bonds_of(bulk("LiH", "rocksalt", a=4.0))])
    assert table["Si-Si"] == [8, pytest.approx(2.3513, abs=1e-4), pytest.approx(2.4249, abs=1e-4), 2]
    assert table["H-Li"][0] == 6 and table["H-Li"][3] == 1
    assert unfamiliar_bonds(table, bonds_of(bulk("Si", "diamond", a=5.3))) == []  # 2.5 % shorter: inside
    squeezed = unfamiliar_bonds(table, bonds_of(bulk("Si", "diamond", a=4.6)))
    assert squeezed == ["Si-Si at 1.99 Å (training's shortest Si-Si bond: 2.35 Å)"]
    unseen = unfamiliar_bonds(table, bonds_of(bulk("LiSi", "rocksalt", a=5.0)))
    assert unseen == ["Li-Si at 2.50 Å (no Li-Si nearest-neighbour bond in training)"]
