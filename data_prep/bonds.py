"""The nearest-neighbour bonds of structures per element pair: what a model's training set held, and the bonds
of a new structure outside it.

A model learns a pair's hoppings from the bonds of that pair it was trained on. On the universal-mini held-out
compositions nearly every nearest-neighbour pair is one training never bonded, and those are the largest
errors (C-H in CH4, Be-O; docs/evaluation.md). So checkpoints record the training bonds (``bond_table``) and
evaluation names a structure's bonds that are of an unseen pair or shorter than any the pair had
(``unfamiliar_bonds``). "Nearest-neighbour" is ``graph.first_shell_mask`` (up to ``graph.FIRST_SHELL`` times each
structure's shortest bond), as in the error reports.
"""

from __future__ import annotations

import numpy as np

from .basis import element_symbol
from .graph import edge_vectors_np, first_shell_mask, neighbor_graph

# a bond shorter than this fraction of the shortest the pair had in training is named (the network's output
# there is an extrapolation; block_scale keeps the fall-off flat below the training bonds)
SHORTER_THAN_TRAINING = 0.9


def pair_key(za: int, zb: int) -> str:
    """"A-B", the lighter element first (as the error reports' per-pair keys)."""
    a, b = sorted((int(za), int(zb)))
    return f"{element_symbol(a)}-{element_symbol(b)}"


def first_shell_bonds(numbers, edge_index, lengths) -> dict[str, tuple[int, float, float]]:
    """{pair: (bonds, shortest, longest)} of one structure's nearest-neighbour edges (each bond is two directed
    edges of a full neighbour list, counted once), Å."""
    numbers, lengths = np.asarray(numbers), np.asarray(lengths, dtype=float)
    if len(lengths) == 0:
        return {}
    near = first_shell_mask(lengths)
    i, j = np.asarray(edge_index)[:, near]
    out: dict[str, tuple[int, float, float]] = {}
    for key, r in zip((pair_key(a, b) for a, b in zip(numbers[i], numbers[j])), lengths[near]):
        n, lo, hi = out.get(key, (0, np.inf, 0.0))
        out[key] = (n + 1, min(lo, float(r)), max(hi, float(r)))
    return {k: ((n + 1) // 2, lo, hi) for k, (n, lo, hi) in out.items()}


# Å: neighbours searched for a structure's first shell (bcc Cs, the longest nearest-neighbour bond of the
# catalogue's elements, is 5.3 Å)
BOND_SEARCH_RADIUS = 7.0


def structure_bonds(numbers, positions, cell, pbc) -> dict[str, tuple[int, float, float]]:
    """``first_shell_bonds`` of a structure (Å; lattice vectors as rows) from its own neighbour list."""
    positions, cell = np.asarray(positions, dtype=float), np.asarray(cell, dtype=float)
    edge_index, shift, _ = neighbor_graph(cell, positions, np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)),
                                          BOND_SEARCH_RADIUS)
    lengths = np.linalg.norm(edge_vectors_np(cell, positions, edge_index, shift), axis=1)
    return first_shell_bonds(numbers, edge_index, lengths)


RECORD_FIELDS = ("cell", "positions", "atomic_numbers", "edge_index", "cell_shift")  # what record_bonds reads


def record_bonds(rec: dict) -> dict[str, tuple[int, float, float]]:
    """``first_shell_bonds`` of an LMDB record (``data_prep.records``; ``RECORD_FIELDS`` of it suffice)."""
    vectors = edge_vectors_np(rec["cell"], rec["positions"], rec["edge_index"], rec["cell_shift"])
    return first_shell_bonds(rec["atomic_numbers"], rec["edge_index"], np.linalg.norm(vectors, axis=1))


def bond_table(per_structure) -> dict[str, list]:
    """{pair: [bonds, shortest, longest, structures]} over an iterable of ``first_shell_bonds`` dicts: the
    checkpoint's ``training_bonds`` (plain JSON)."""
    return _tabulate((key, n, lo, hi, 1) for bonds in per_structure for key, (n, lo, hi) in bonds.items())


def merge_bond_tables(a: dict, b: dict) -> dict[str, list]:
    """Two ``bond_table`` results as one (a model fine-tuned on ``b`` after training on ``a`` has seen both)."""
    return _tabulate((key, *row) for table in (a, b) for key, row in table.items())


def _tabulate(rows) -> dict[str, list]:
    """(pair, bonds, shortest, longest, structures) rows summed per pair into a ``bond_table``."""
    table: dict[str, list] = {}
    for key, n, lo, hi, s in rows:
        t = table.setdefault(key, [0, np.inf, 0.0, 0])
        table[key] = [t[0] + n, min(t[1], lo), max(t[2], hi), t[3] + s]
    return {k: [int(n), round(float(lo), 4), round(float(hi), 4), int(s)] for k, (n, lo, hi, s) in sorted(table.items())}


def unfamiliar_bonds(table: dict, bonds: dict[str, tuple[int, float, float]]) -> list[str]:
    """The pairs of a structure's nearest-neighbour ``bonds`` that ``table`` (``bond_table``) never had, or only
    at longer bonds (below ``SHORTER_THAN_TRAINING`` of its shortest), as readable phrases."""
    out = []
    for key, (_, lo, _) in sorted(bonds.items()):
        known = table.get(key)
        if known is None:
            out.append(f"{key} at {lo:.2f} Å (no {key} nearest-neighbour bond in training)")
        elif lo < SHORTER_THAN_TRAINING * known[1]:
            out.append(f"{key} at {lo:.2f} Å (training's shortest {key} bond: {known[1]:.2f} Å)")
    return out
