"""Physics of the model outputs: E(3) equivariance (with parity), translation and permutation invariance,
exact H_ij(R) = H_ji(-R)ᵀ, batching, gradients. Both DeepH-2 and the DeepH-E3 baseline, in float64."""

import numpy as np
import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch

from data_prep.torch_data import block_mask
from deeph_lightning.models import build_model
from deeph_lightning.models.readout import openmx_to_e3nn_blocks
from deeph_lightning.models.so3 import float64_constants

from model_structures import BASIS, CUTOFF, STRUCTURES, TINY, graph

TWO_LAYERS = {**TINY, "layers": 2}  # symmetry must survive message passing over more than one layer
NAMES = ["deeph2", "deeph_e3"]


def make_model(name, dtype=torch.float64, seed=0, **kw):
    """DeepH-2 is built in float32 and converted (its constants are float64 buffers, exact after .to());
    the baseline follows e3nn's convention: build under the target default dtype."""
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype if name == "deeph_e3" else torch.float32)
    try:
        model = build_model(name, basis=BASIS.to_dict(), cutoff=CUTOFF, **{**TWO_LAYERS, **kw})
    finally:
        torch.set_default_dtype(old)
    return model.to(dtype)


def run(model, data_list):
    with torch.no_grad():
        return model(Batch.from_data_list(list(data_list)))


def orbital_rotation(q: torch.Tensor) -> torch.Tensor:
    """D of an O(3) matrix on the union orbitals in e3nn's basis (orbital l has parity (-1)^l)."""
    with float64_constants():  # e3nn's generators follow the default dtype
        return torch.block_diag(*[o3.Irrep(l, (-1) ** l).D_from_matrix(q) for l in BASIS.union_shells])


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    return make_model(request.param)


def assert_equivariant(model, which: int, q: torch.Tensor) -> dict:
    """Model outputs on STRUCTURES[which] and on its copy transformed by the O(3) matrix ``q`` (same (i, j, R)
    edges, same order) must be related by the orbitals' D(q); returns the untransformed outputs."""
    z, pos, cell, pbc = STRUCTURES[which]
    qn = q.numpy()
    out = run(model, [graph(z, pos, cell, pbc)])
    out_rot = run(model, [graph(z, pos @ qn.T, cell @ qn.T, pbc)])
    d = orbital_rotation(q)
    for key in ("h_node", "h_edge"):
        h = openmx_to_e3nn_blocks(out[key], BASIS.union_shells)
        h_rot = openmx_to_e3nn_blocks(out_rot[key], BASIS.union_shells)
        assert h.abs().max() > 1e-2
        torch.testing.assert_close(h_rot, d @ h @ d.T, atol=1e-9, rtol=1e-7)
    return out


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("improper", [False, True])
def test_rotation_and_reflection_equivariance(model, which, improper):
    torch.manual_seed(10 + which)
    q = o3.rand_matrix(dtype=torch.float64) * (-1 if improper else 1)
    out = assert_equivariant(model, which, q)
    if improper:
        # not vacuous: pseudo-parity irreps (antisymmetric part of p-p hoppings, a 1e pseudovector) are present
        p = slice(2, 5)  # first union p shell in OpenMX order (union shells s, s, p, p, d)
        anti = out["h_edge"][:, p, p] - out["h_edge"][:, p, p].transpose(1, 2)
        assert anti.abs().max() > 1e-3 * out["h_edge"][:, p, p].abs().max()


@pytest.mark.parametrize("mmax", [0, 1, 4])
def test_deeph2_equivariant_at_every_mmax(mmax):
    """The attention's SO(2) layers truncate at mmax, the edge head never: pseudo channels (rotated by J·D
    in the bond frame) must come back right whatever the truncation, under an improper rotation too."""
    torch.manual_seed(7)
    assert_equivariant(make_model("deeph2", mmax=mmax), 2, -o3.rand_matrix(dtype=torch.float64))


@pytest.mark.parametrize("name", ["deeph2", "deeph_e3"])
def test_onsite_bond_sum_equivariant_and_used(name):
    """onsite_edges: each on-site block gains a sum over the atom's bonds of a second edge output (DeepH-2: an
    SO(2) output rotated back from the bond frame); it must stay equivariant (improper rotation included) and
    actually reach the on-site blocks."""
    torch.manual_seed(8)
    model = make_model(name, onsite_edges=True)
    out = assert_equivariant(model, 2, -o3.rand_matrix(dtype=torch.float64))
    with torch.no_grad():
        for w in model.edge_onsite.parameters():
            w.zero_()
    without = run(model, [graph(*STRUCTURES[2])])
    torch.testing.assert_close(without["h_edge"], out["h_edge"], rtol=0, atol=0)
    assert (without["h_node"] - out["h_node"]).abs().max() > 1e-3 * out["h_node"].abs().max()


def test_translation_invariance(model):
    z, pos, cell, pbc = STRUCTURES[0]
    data = graph(z, pos, cell, pbc)
    moved = data.clone()
    moved.pos = moved.pos + torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)
    a, b = run(model, [data]), run(model, [moved])
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-11, rtol=1e-9)


def test_atom_permutation_permutes_blocks(model):
    z, pos, cell, pbc = STRUCTURES[2]
    perm = np.array([2, 0, 1])  # new atom k is old atom perm[k]
    a_data, b_data = graph(z, pos, cell, pbc), graph(z[perm], pos[perm], cell, pbc)
    a, b = run(model, [a_data]), run(model, [b_data])
    torch.testing.assert_close(b["h_node"], a["h_node"][perm], atol=1e-11, rtol=1e-9)
    key_a = {(int(i), int(j), *map(int, r)): e for e, (i, j, r) in
             enumerate(zip(*a_data.edge_index.numpy(), a_data.cell_shift.numpy()))}
    idx = [key_a[(perm[i], perm[j], *map(int, r))] for i, j, r in zip(*b_data.edge_index.numpy(), b_data.cell_shift.numpy())]
    assert sorted(idx) == list(range(len(idx)))
    torch.testing.assert_close(b["h_edge"], a["h_edge"][idx], atol=1e-11, rtol=1e-9)


def test_hermiticity_exact(model):
    data = [graph(*s) for s in STRUCTURES]
    batch = Batch.from_data_list(data)
    out = run(model, data)
    # H_ij(R) = H_ji(-R)ᵀ bit for bit, on-site blocks symmetric
    assert torch.equal(out["h_edge"], out["h_edge"][batch.edge_rev].transpose(1, 2))
    assert torch.equal(out["h_node"], out["h_node"].transpose(1, 2))
    # nothing outside each element's orbitals
    z = batch.atomic_numbers
    assert not out["h_node"][~block_mask(BASIS, z)].any()
    assert not out["h_edge"][~block_mask(BASIS, z, batch.edge_index)].any()
    assert out["h_edge"].abs().amax(dim=(1, 2)).min() > 0


def test_heterogeneous_batch_equals_one_by_one(model):
    data = [graph(*s) for s in STRUCTURES]
    together = run(model, data)
    alone = [run(model, [d]) for d in data]
    for key in ("h_node", "h_edge"):
        torch.testing.assert_close(together[key], torch.cat([a[key] for a in alone]), atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_float32(name):
    model = make_model(name, dtype=torch.float32)
    batch = Batch.from_data_list([graph(*s, dtype=torch.float32) for s in STRUCTURES])
    out = model(batch)
    assert out["h_node"].dtype == torch.float32
    (out["h_node"].square().mean() + out["h_edge"].square().mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(int(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)


def test_unknown_element_and_small_lmax_rejected():
    model = make_model("deeph2")
    z, pos, cell, pbc = STRUCTURES[0]
    data = graph(z, pos, cell, pbc)
    data.atomic_numbers = torch.full_like(data.atomic_numbers, 29)
    with pytest.raises(ValueError, match="29"):
        model(Batch.from_data_list([data]))
    with pytest.raises(ValueError, match="lmax"):
        make_model("deeph2", lmax=3, mmax=2)


@pytest.mark.parametrize("onsite_edges", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_deeph2_edge_chunks_give_the_same_output(chunk, onsite_edges):
    """Inference on a large structure works through the edges a chunk at a time (attention's softmax over a
    node's edges and the on-site bond sum span chunks): the output must equal the one-pass forward for any
    chunk size."""
    model = make_model("deeph2", onsite_edges=onsite_edges)
    batch = Batch.from_data_list([graph(*STRUCTURES[k]) for k in range(3)])
    assert batch.edge_index.shape[1] > 64  # several chunks for every size tried
    with torch.no_grad():
        whole, chunked = model(batch), model(batch, edge_chunk=chunk)
    for key in ("h_node", "h_edge"):
        torch.testing.assert_close(chunked[key], whole[key], rtol=0, atol=1e-12)
