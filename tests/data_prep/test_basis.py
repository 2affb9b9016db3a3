import numpy as np
import pytest
import torch
from e3nn import o3

from data_prep.basis import BasisTable, check_elements, openmx_to_e3nn


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_openmx_to_e3nn_is_orthogonal(l):
    u = openmx_to_e3nn(l)
    assert u.shape == (2 * l + 1, 2 * l + 1)
    np.testing.assert_allclose(u @ u.T, np.eye(2 * l + 1), atol=1e-12)


def test_openmx_p_and_d_orbitals_land_on_the_right_e3nn_components():
    # e3nn >= 0.5: l=1 is (x, y, z); l=2 components are (√15 xz, √15 xy, √5(y²-(x²+z²)/2), √15 yz, √15/2 (z²-x²)).
    np.testing.assert_allclose(openmx_to_e3nn(1), np.eye(3), atol=1e-12)
    u = openmx_to_e3nn(2)  # OpenMX d order: d3z²-r², dx²-y², dxy, dxz, dyz
    assert u[1, 2] == pytest.approx(1.0)  # dxy
    assert u[0, 3] == pytest.approx(1.0)  # dxz
    assert u[3, 4] == pytest.approx(1.0)  # dyz


@pytest.mark.parametrize("l", [1, 2, 3])
def test_each_openmx_polynomial_is_one_e3nn_combination_and_rotates_with_d(l, float64):
    from data_prep.basis import _openmx_polynomials

    rng = np.random.default_rng(1)
    pts = rng.normal(size=(30, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    u = openmx_to_e3nn(l)
    y_e3nn = o3.spherical_harmonics(l, torch.from_numpy(pts), True, normalization="component").numpy()
    target = y_e3nn @ u  # row-vector form of Y_openmx = Uᵀ Y_e3nn
    f = _openmx_polynomials(l, pts)
    # each OpenMX polynomial must be a *positive multiple* of its column: no sign flips, no mixing
    c = np.einsum("nk,nk->k", f, target) / np.einsum("nk,nk->k", f, f)
    assert np.all(c > 0)
    np.testing.assert_allclose(f * c, target, atol=1e-10)
    torch.manual_seed(3)
    rot = o3.rand_matrix(dtype=torch.float64)
    d = o3.Irrep(l, (-1) ** l).D_from_matrix(rot).numpy()
    f_rot = _openmx_polynomials(l, pts @ rot.numpy().T) * c
    np.testing.assert_allclose(f_rot, (f * c) @ (u.T @ d @ u).T, atol=1e-10)


def test_union_basis_and_slots():
    table = BasisTable.from_mapping({"Fe": [0, 0, 1, 1, 2], "O": [0, 1], 1: [0]})
    assert table.union_shells == (0, 0, 1, 1, 2)
    assert table.n_union == 13
    np.testing.assert_array_equal(table.union_slots(8), [0, 2, 3, 4])
    np.testing.assert_array_equal(table.union_slots(26), np.arange(13))
    assert table.n_orbitals(1) == 1
    # an element whose shells interleave l (s p s p) maps each shell to the k-th union shell of that l
    odd = BasisTable.from_mapping({6: [0, 1, 0, 1]})
    np.testing.assert_array_equal(odd.union_slots(6), [0, 2, 3, 4, 1, 5, 6, 7])
    assert BasisTable.from_dict(table.to_dict()) == table


def test_basis_errors_name_the_element():
    table = BasisTable.from_mapping({14: [0, 1]})
    with pytest.raises(ValueError, match="Si"):
        table.merge(BasisTable.from_mapping({14: [0, 1, 2]}))
    with pytest.raises(ValueError, match="Au"):
        check_elements(table, [14, 79], "mystructure")
    with pytest.raises(KeyError, match="Au"):
        table.shells_of(79)
    with pytest.raises(ValueError, match="l=0..3"):
        BasisTable.from_mapping({14: [0, 4]})
