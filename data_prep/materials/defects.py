"""The "complicated" structures: point defects in supercells, slabs, bilayers, strongly strained and larger
rattled cells, each made from a regular structure of the catalogue."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import make_supercell, surface

from .prototypes import VACUUM

KINDS = ("vacancy", "substitution", "antisite", "slab", "bilayer", "strained", "supercell")


def supercell(atoms: Atoms, lo: int, hi: int) -> Atoms:
    """Smallest diagonal repetition with lo <= atoms <= hi, repeating the shortest lattice vectors first."""
    lengths = np.linalg.norm(atoms.cell[:], axis=1)
    reps = np.ones(3, dtype=int)
    periodic = [k for k in np.argsort(lengths) if lengths[k] < VACUUM]  # never repeat across vacuum
    while len(atoms) * reps.prod() < lo:
        k = min(periodic, key=lambda k: reps[k] * lengths[k])
        reps[k] += 1
        if len(atoms) * reps.prod() > hi:
            reps[k] -= 1
            break
    return make_supercell(atoms, np.diag(reps)) if reps.prod() > 1 else atoms.copy()


def vacancy(atoms: Atoms, rng) -> tuple[Atoms, dict]:
    cell = supercell(atoms, 8, 24)
    k = int(rng.integers(len(cell)))
    info = {"removed": cell[k].symbol, "site": k}
    del cell[k]
    return cell, info


def substitution(atoms: Atoms, rng, dopant: str) -> tuple[Atoms, dict]:
    cell = supercell(atoms, 8, 24)
    k = int(rng.integers(len(cell)))
    info = {"replaced": cell[k].symbol, "by": dopant, "site": k}
    cell[k].symbol = dopant
    return cell, info


def antisite(atoms: Atoms, rng) -> tuple[Atoms, dict]:
    """Swap a pair of nearest neighbours of different species."""
    from ase.neighborlist import neighbor_list

    cell = supercell(atoms, 8, 24)
    i, j, d = neighbor_list("ijd", cell, 4.0)
    mixed = np.nonzero(cell.numbers[i] != cell.numbers[j])[0]
    if not len(mixed):
        raise ValueError("no pair of different neighbours to swap")
    m = mixed[np.argmin(d[mixed])]
    a, b = int(i[m]), int(j[m])
    sa, sb = cell[a].symbol, cell[b].symbol
    cell[a].symbol, cell[b].symbol = sb, sa
    return cell, {"swapped": [sa, sb], "sites": [a, b]}


def slab(atoms: Atoms, rng) -> tuple[Atoms, dict]:
    """A few layers of a low-index surface of a bulk crystal, vacuum on both sides."""
    miller = [(1, 0, 0), (1, 1, 0), (1, 1, 1)][int(rng.integers(3))]
    layers = int(rng.integers(3, 5))
    cell = surface(atoms, miller, layers, vacuum=VACUUM / 2, periodic=True)
    if len(cell) > 24:
        cell = surface(atoms, miller, 2, vacuum=VACUUM / 2, periodic=True)
    return cell, {"miller": list(miller), "layers": layers}


def bilayer(layer: Atoms, rng, gap: float) -> tuple[Atoms, dict]:
    """Two copies of a monolayer, the second shifted in plane (AA or AB) at ``gap`` Å above the first."""
    z = layer.positions[:, 2]
    thickness = float(np.ptp(z))
    shift_frac = [(0, 0), (1 / 3, 2 / 3)][int(rng.integers(2))]
    cell = layer.cell[:].copy()
    top = layer.copy()
    top.positions += np.array(shift_frac[0]) * cell[0] + np.array(shift_frac[1]) * cell[1]
    top.positions[:, 2] += thickness + gap
    both = layer + top
    both.set_cell([cell[0], cell[1], [0, 0, 2 * thickness + gap + VACUUM]])
    both.positions[:, 2] += VACUUM / 2 - both.positions[:, 2].min()
    both.wrap()
    return both, {"stacking": "AA" if shift_frac == (0, 0) else "AB", "gap": round(gap, 3)}


def strained(atoms: Atoms, rng, amount: float = 0.07) -> tuple[Atoms, dict]:
    eps = rng.uniform(-amount, amount, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(out.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return out, {"max_strain": round(float(np.abs(eps).max()), 4)}


def larger_cell(atoms: Atoms, rng) -> tuple[Atoms, dict]:
    cell = supercell(atoms, 16, 32)
    return cell, {"repeats": len(cell) // len(atoms)}
