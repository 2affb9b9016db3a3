"""Small real structures (s, p, d basis) shared by the model tests."""

import numpy as np
import torch
from ase.build import bulk, mx2

from data_prep.basis import BasisTable
from data_prep.torch_data import structure_to_data

# s, p and d shells; Si and Fe with two s and two p shells, O with s and p only.
BASIS = BasisTable.from_mapping({14: [0, 0, 1, 1, 2], 8: [0, 1], 26: [0, 0, 1, 1, 2]})
CUTOFF = 3.6
# The tiny network the model tests share (seconds per test on a CPU).
TINY = dict(lmax=4, mmax=2, channels=4, pseudo_channels=4, layers=1, heads=2, num_radial=8, hidden_radial=16)


def _structures():
    si = bulk("Si", "diamond", a=5.43)
    si.numbers[1] = 8
    feo = bulk("FeO", "rocksalt", a=4.3)
    layer = mx2("MoS2", a=3.18, thickness=3.19, vacuum=5.0)  # hexagonal cell, periodic in-plane only
    layer.numbers[:] = [26, 14, 8]
    layer.pbc = [True, True, False]
    out = []
    for k, atoms in enumerate((si, feo, layer)):
        atoms.rattle(0.08, seed=k)  # break symmetries so that every block component is generic
        out.append((atoms.numbers.copy(), atoms.positions.copy(), np.array(atoms.cell[:]), np.array(atoms.pbc)))
    return out


STRUCTURES = _structures()


def graph(numbers, positions, cell, pbc, dtype=torch.float64):
    return structure_to_data(numbers, positions, cell, pbc, CUTOFF, BASIS, dtype=dtype)

