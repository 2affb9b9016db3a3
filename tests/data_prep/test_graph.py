import itertools

import numpy as np
import pytest
from ase.build import bulk, graphene, molecule
from ase.geometry import cellpar_to_cell
from hypothesis import given, settings, strategies as st

from data_prep.graph import MIN_DISTANCE, GraphError, edge_vectors_np, neighbor_graph


def brute_force(cell, pos, pbc, cutoff):
    """Every (i, j, R) with |r_j + R·cell - r_i| < cutoff, except (i, i, 0), by explicit enumeration."""
    inv_heights = np.linalg.norm(np.linalg.inv(cell), axis=0)  # 1 / interplanar spacing
    nmax = [int(np.ceil(cutoff * inv_heights[d])) + 1 if pbc[d] else 0 for d in range(3)]
    found, near = set(), set()
    for r in itertools.product(*(range(-n, n + 1) for n in nmax)):
        shift = np.array(r) @ cell
        d = np.linalg.norm(pos[None, :, :] + shift - pos[:, None, :], axis=-1)
        for i, j in zip(*np.nonzero(d < cutoff + 1e-7)):
            if i == j and r == (0, 0, 0):
                continue
            (near if abs(d[i, j] - cutoff) < 1e-7 else found).add((int(i), int(j), *r))
    return found, near


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.floats(1.5, 6.0), min_size=3, max_size=3),
    angles=st.lists(st.floats(65.0, 115.0), min_size=3, max_size=3),
    frac=st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=1, max_size=4),
    pbc=st.lists(st.booleans(), min_size=3, max_size=3),
    cutoff=st.floats(0.8, 5.0),
)
def test_neighbor_graph_matches_brute_force(lengths, angles, frac, pbc, cutoff):
    try:
        cell = cellpar_to_cell(lengths + angles)
    except ValueError:
        return
    if np.linalg.det(cell) < 0.3 * np.prod(lengths):  # skip nearly degenerate cells
        return
    pos = np.array(frac) @ cell
    expected, near = brute_force(cell, pos, pbc, cutoff)
    min_dist = min((np.linalg.norm(pos[j] - pos[i] + np.array(r) @ cell) for i, j, *r in expected | near), default=9.9)
    if min_dist < MIN_DISTANCE:
        with pytest.raises(GraphError, match="overlapping"):
            neighbor_graph(cell, pos, pbc, cutoff)
        return
    ei, shift, rev = neighbor_graph(cell, pos, pbc, cutoff)
    got = {(int(i), int(j), *map(int, r)) for (i, j), r in zip(ei.T, shift)}
    assert got - near == expected
    assert len(got) == ei.shape[1]  # no duplicates
    # reverse edges: (j, i, -R) at edge_rev
    np.testing.assert_array_equal(ei[:, rev], ei[::-1])
    np.testing.assert_array_equal(shift[rev], -shift)
    d = np.linalg.norm(edge_vectors_np(cell, pos, ei, shift), axis=1)
    assert np.all(d < cutoff) and np.all(d > 0)


def test_small_cell_has_many_images_and_sorted_deterministic_order():
    si = bulk("Si", "diamond", a=5.43)
    ei, shift, rev = neighbor_graph(si.cell.array, si.positions, si.pbc, 7.5)
    # diamond Si (a = 5.43 Å) within 7.5 Å: shells at 2.35, 3.84, 4.50, 5.43, 5.92, 6.65, 7.05 Å holding
    # 4 + 12 + 12 + 6 + 12 + 24 + 16 = 86 neighbours per atom (the next shell, a√2 = 7.68 Å, is outside)
    assert ei.shape[1] == 2 * 86
    assert np.all(np.diff(ei[0]) >= 0)
    # self-images (i, i, R != 0) are edges
    assert np.any((ei[0] == ei[1]) & np.any(shift != 0, axis=1))
    perm = np.random.default_rng(0).permutation(len(si))  # same graph however positions are listed
    ei2, shift2, _ = neighbor_graph(si.cell.array, si.positions[perm], si.pbc, 7.5)
    assert ei2.shape == ei.shape


def test_slab_and_molecule():
    g = graphene(vacuum=10.0)  # periodic in-plane, vacuum along z
    g.pbc = [True, True, False]
    ei, shift, _ = neighbor_graph(g.cell.array, g.positions, g.pbc, 6.0)
    assert np.all(shift[:, 2] == 0)
    h2o = molecule("H2O")
    ei, shift, _ = neighbor_graph(np.zeros((3, 3)), h2o.positions, [False] * 3, 3.0)
    assert ei.shape[1] == 6 and np.all(shift == 0)


def test_bad_input():
    with pytest.raises(GraphError, match="no atoms"):
        neighbor_graph(np.eye(3), np.zeros((0, 3)), [True] * 3, 5.0)
    with pytest.raises(GraphError, match="degenerate"):
        neighbor_graph(np.diag([1.0, 1.0, 0.0]), np.zeros((1, 3)), [True] * 3, 5.0)
    with pytest.raises(GraphError, match="cutoff"):
        neighbor_graph(np.eye(3), np.zeros((1, 3)), [True] * 3, 0.0)
