"""Output scale / on-site shift per element pair and shell pair (``block_scale``): statistics from real DFT
blocks, exact application, and the symmetries it must keep (O(3) equivariance, H_ij(R) = H_ji(-R)ᵀ)."""

import json

import numpy as np
import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch

from data_prep.deeph_format import read_deeph
from data_prep.records import structure_to_record
from data_prep.torch_data import block_mask, edge_vectors, record_to_data
from deeph_lightning.models.block_scale import block_statistics, union_shell_of_orbital

from model_structures import BASIS, STRUCTURES, graph
from test_model_symmetry import assert_equivariant, make_model


def example_stats(seed=0):
    """Non-trivial tables for BASIS (union shells s, s, p, p, d): every value different."""
    rng = np.random.default_rng(seed)
    shells = np.array(BASIS.union_shells)
    S = len(shells)
    out = {"onsite_shift": {}, "onsite_scale": {}, "hopping_scale": {}}
    for z in BASIS.elements:
        shift = rng.normal(scale=5.0, size=(S, S)) * (shells[:, None] == shells[None, :])
        scale = rng.uniform(0.1, 3.0, size=(S, S))
        out["onsite_shift"][str(z)] = (shift + shift.T).tolist()
        out["onsite_scale"][str(z)] = (scale + scale.T).tolist()
    out["hopping_decay"] = {}
    for a in BASIS.elements:
        for b in BASIS.elements:
            if a <= b:
                t = rng.uniform(0.01, 2.0, size=(S, S))
                out["hopping_scale"][f"{a}-{b}"] = (t + t.T if a == b else t).tolist()
                out["hopping_decay"][f"{a}-{b}"] = [-rng.uniform(0.3, 2.0), rng.uniform(1.5, 4.0)]
    return json.loads(json.dumps(out))  # what a checkpoint's hyper-parameters hold


def expand(t, shell_of):
    return torch.as_tensor(np.asarray(t))[shell_of][:, shell_of]


def test_stats_applied_exactly_with_symmetries_kept():
    stats = example_stats()
    plain = make_model("deeph2", seed=3)
    scaled = make_model("deeph2", seed=3, block_stats=stats)
    data = [graph(*s) for s in STRUCTURES]
    batch = Batch.from_data_list(data)
    with torch.no_grad():
        a, b = plain(batch), scaled(batch)
    z, (i, j) = batch.atomic_numbers, batch.edge_index
    sh = torch.from_numpy(union_shell_of_orbital(BASIS))
    l_of = torch.tensor([l for l in BASIS.union_shells for _ in range(2 * l + 1)])
    m_of = torch.tensor([m for l in BASIS.union_shells for m in range(2 * l + 1)])
    same = (l_of[:, None] == l_of[None, :]) & (m_of[:, None] == m_of[None, :])  # identity of l_a = l_b sub-blocks
    node_mask, edge_mask = block_mask(BASIS, z), block_mask(BASIS, z, batch.edge_index)
    for n, zz in enumerate(z.tolist()):
        want = expand(stats["onsite_scale"][str(zz)], sh) * a["h_node"][n] + expand(stats["onsite_shift"][str(zz)], sh) * same
        torch.testing.assert_close(b["h_node"][n], want * node_mask[n], atol=1e-12, rtol=0)
    shorter = 0
    for e in range(len(i)):
        zi, zj = int(z[i[e]]), int(z[j[e]])
        t = np.asarray(stats["hopping_scale"][f"{min(zi, zj)}-{max(zi, zj)}"])
        t = t if zi <= zj else t.T  # only one order is given: the other is the transpose
        beta, r0 = stats["hopping_decay"][f"{min(zi, zj)}-{max(zi, zj)}"]
        r = float(edge_vectors(batch)[e].norm())
        f = np.exp(beta * max(r - r0, 0.0))  # the fall-off with the bond length, flat below r0
        shorter += r < r0
        torch.testing.assert_close(b["h_edge"][e], f * expand(t, sh) * a["h_edge"][e] * edge_mask[e], atol=1e-12,
                                   rtol=1e-12)
    assert 0 < shorter < len(i)  # both sides of r0 exercised
    # exact Hermiticity and O(3) equivariance with the shift and scales on
    assert torch.equal(b["h_edge"], b["h_edge"][batch.edge_rev].transpose(1, 2))
    assert torch.equal(b["h_node"], b["h_node"].transpose(1, 2))
    torch.manual_seed(7)
    assert_equivariant(scaled, 1, -o3.rand_matrix(dtype=torch.float64))


def test_bad_stats_rejected():
    S = len(BASIS.union_shells)
    good = example_stats()
    bad_shift = json.loads(json.dumps(good))
    bad_shift["onsite_shift"]["14"][0][2] = bad_shift["onsite_shift"]["14"][2][0] = 1.0  # s-p: not invariant
    with pytest.raises(ValueError, match="l_a != l_b"):
        make_model("deeph2", block_stats=bad_shift)
    with pytest.raises(ValueError, match="29"):
        make_model("deeph2", block_stats={"onsite_scale": {"29": np.ones((S, S)).tolist()}})
    t = np.arange(S * S, dtype=float).reshape(S, S) + 1
    with pytest.raises(ValueError, match="transpose"):
        make_model("deeph2", block_stats={"hopping_scale": {"8-14": t.tolist(), "14-8": t.tolist()}})
    with pytest.raises(ValueError, match="shape"):
        make_model("deeph2", block_stats={"onsite_scale": {"14": [[1.0]]}})
    with pytest.raises(ValueError, match="must be <= 0"):  # a hopping growing with distance
        make_model("deeph2", block_stats={"hopping_decay": {"8-14": [0.5, 2.0]}})


def test_statistics_of_real_dft_blocks(dft_folders):
    structures = [read_deeph(f) for f in dft_folders]  # bulk Si and rocksalt LiH
    basis = structures[0].basis_table().merge(structures[1].basis_table())
    graphs = [record_to_data(structure_to_record(st, 5.0, f"s{k}"), basis, torch.float64)
              for k, st in enumerate(structures)]
    stats = block_statistics(graphs, basis)
    shells = list(basis.union_shells)

    # independent path: the DFT on-site blocks as read from the folder, in each element's own shell order
    si = structures[0]
    onsite = [si.hamiltonians[(0, 0, 0, a, a)] for a in range(si.n_atoms)]
    ls = si.orbital_types[0]
    starts = np.cumsum([0] + [2 * l + 1 for l in ls])
    slot = {k: [u for u, l in enumerate(shells) if l == ls[k]][ls[:k].count(ls[k])] for k in range(len(ls))}
    for p in range(len(ls)):
        for q in range(len(ls)):
            sub = np.stack([h[starts[p]:starts[p + 1], starts[q]:starts[q + 1]] for h in onsite])
            shift = np.mean([np.trace(s) for s in sub]) / (2 * ls[p] + 1) if ls[p] == ls[q] else 0.0
            rms = np.sqrt(np.mean((sub - shift * np.eye(*sub.shape[1:])) ** 2))
            assert stats["onsite_shift"]["14"][slot[p]][slot[q]] == pytest.approx(shift, abs=1e-9)
            assert stats["onsite_scale"]["14"][slot[p]][slot[q]] == pytest.approx(max(rms, 0.01), rel=1e-9)
    seen = {"14-14", "1-1", "1-3", "3-3"}
    # pairs never seen together (Si with H or Li): the geometric mean of the two homonuclear models
    assert set(stats["hopping_scale"]) == seen | {"1-14", "3-14"}
    for a, b in ((1, 14), (3, 14)):
        ha, hb = np.asarray(stats["hopping_scale"][f"{a}-{a}"]), np.asarray(stats["hopping_scale"][f"{b}-{b}"])
        np.testing.assert_allclose(stats["hopping_scale"][f"{a}-{b}"], np.sqrt(np.outer(np.diag(ha), np.diag(hb))))
        (ba, ra), (bb, rb) = stats["hopping_decay"][f"{a}-{a}"], stats["hopping_decay"][f"{b}-{b}"]
        beta, r0 = stats["hopping_decay"][f"{a}-{b}"]
        for r in (1.5, 4.0):  # f_ab(r) = sqrt(f_aa(r) f_bb(r))
            assert np.exp(beta * (r - r0)) == pytest.approx(np.sqrt(np.exp(ba * (r - ra)) * np.exp(bb * (r - rb))))
    # hoppings fall off with distance: β < 0 per Å, measured from the nearest bond (bulk Si: 2.35 Å)
    beta, r0 = stats["hopping_decay"]["14-14"]
    assert -2.0 < beta < -0.3
    assert r0 == pytest.approx(2.35, abs=0.02)
    flat = block_statistics(graphs, basis, decay=False)
    assert "hopping_decay" not in flat and flat["onsite_scale"] == stats["onsite_scale"]
    # the Si-Si scale is that of the nearest neighbours (f = 1 there), larger than the RMS over all distances
    assert stats["hopping_scale"]["14-14"][0][0] > flat["hopping_scale"]["14-14"][0][0]


