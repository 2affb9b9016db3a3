"""The compact readout (only the shell pairs both elements of a block have) equals the padded union-basis
readout on the same weights, and the model stays O(3) equivariant with it."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from e3nn import o3
from torch_geometric.data import Batch

from data_prep.basis import BasisTable
from data_prep.deeph_format import read_deeph
from data_prep.embedded import quickstart_path
from data_prep.records import structure_to_record
from data_prep.torch_data import block_mask, record_to_data, structure_to_data
from deeph_lightning.models import build_model
from deeph_lightning.models.compact_readout import CompactReadout
from deeph_lightning.models.readout import BlockReadout, openmx_to_e3nn_blocks
from deeph_lightning.models.so3 import float64_constants

from model_structures import TINY

# union basis {s, s, p, d} (as the default basis): C and Si fill 4 of its 10 orbitals, Fe all
MIXED = BasisTable.from_mapping({6: [0, 1], 14: [0, 1], 26: [0, 0, 1, 2]})
CUTOFF = 3.6


def mixed_batch(dtype=torch.float64) -> Batch:
    """Si diamond cell with C and Fe substituted, and rocksalt FeC: every element pair, both directions."""
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.numbers[[1, 5]] = 6
    si.numbers[[2, 7]] = 26
    fec = bulk("FeC", "rocksalt", a=4.0)
    out = []
    for k, atoms in enumerate((si, fec)):
        atoms.rattle(0.08, seed=k)
        out.append(structure_to_data(atoms.numbers, atoms.positions, atoms.cell[:], [True] * 3, CUTOFF, MIXED,
                                     dtype=dtype))
    return Batch.from_data_list(out)


def model_pair(basis: BasisTable, cutoff: float, name: str = "deeph2", **kw):
    """The same network with the padded and the compact readout (float64, identical weights)."""
    torch.manual_seed(0)
    padded = build_model(name, basis=basis.to_dict(), cutoff=cutoff, readout="padded", **{**TINY, **kw}).double()
    compact = build_model(name, basis=basis.to_dict(), cutoff=cutoff, readout="compact", **{**TINY, **kw}).double()
    compact.load_state_dict(padded.state_dict())
    return padded, compact


@pytest.mark.parametrize("shells", [
    {6: [0, 1], 14: [0, 1], 26: [0, 0, 1, 2]},
    {8: [1, 0], 14: [0, 0, 1, 1, 2], 26: [0, 0, 1, 1, 2]},  # shells out of l order in the file
    {6: [0, 1], 64: [0, 1, 2, 3]},  # f shells
])
def test_readout_alone_equals_padded_on_real_entries(shells):
    basis = BasisTable.from_mapping(shells)
    lmax = 2 * basis.lmax
    padded, compact = BlockReadout(basis, lmax), CompactReadout(basis, lmax)
    assert compact.channels == padded.channels and compact.n_nat == padded.n_nat
    gen = torch.Generator().manual_seed(0)
    el = torch.tensor(basis.elements)
    z = el[torch.randint(len(el), (40,), generator=gen)]
    edges = torch.randint(40, (2, 200), generator=gen)
    f = torch.randn(len(z) + edges.shape[1], (lmax + 1) ** 2, padded.channels, dtype=torch.float64,
                    generator=gen, requires_grad=True)
    zi, zj = torch.cat([z, z[edges[0]]]), torch.cat([z, z[edges[1]]])
    mask = torch.cat([block_mask(basis, z), block_mask(basis, z, edges)])
    want, got = padded(f) * mask, compact(f, zi, zj)
    assert not got[~mask].any()
    torch.testing.assert_close(got, want, atol=1e-13, rtol=0)
    w = torch.randn(want.shape, dtype=torch.float64, generator=gen)
    g_want, = torch.autograd.grad((want * w).sum(), f)
    g_got, = torch.autograd.grad((got * w).sum(), f)
    torch.testing.assert_close(g_got, g_want, atol=1e-13, rtol=0)


def test_readout_of_no_blocks():
    out = CompactReadout(MIXED, 4)(torch.zeros(0, 25, 8), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, MIXED.n_union, MIXED.n_union)


def quickstart_batch() -> tuple[Batch, BasisTable]:
    folders = sorted(p for p in quickstart_path().iterdir() if p.is_dir())[:3]
    structures = [read_deeph(f) for f in folders]
    basis = structures[0].basis_table()
    for st in structures[1:]:
        basis = basis.merge(st.basis_table())
    data = [record_to_data(structure_to_record(st, 5.0, f.name), basis, dtype=torch.float64)
            for st, f in zip(structures, folders)]
    return Batch.from_data_list(data), basis


@pytest.mark.parametrize("name", ["deeph2", "deeph_e3"])
def test_model_outputs_and_gradients_equal_padded(name):
    batch = mixed_batch()
    z = batch.atomic_numbers
    assert {6, 14, 26} <= set(z.tolist())
    padded, compact = model_pair(MIXED, CUTOFF, name)
    a, b = padded(batch), compact(batch)
    for key in ("h_node", "h_edge"):
        assert a[key].abs().max() > 1e-3
        torch.testing.assert_close(b[key], a[key], atol=1e-12, rtol=0)
    assert not b["h_edge"][~block_mask(MIXED, z, batch.edge_index)].any()
    # same gradients of a loss, parameter by parameter
    (a["h_node"].square().mean() + a["h_edge"].square().mean()).backward()
    (b["h_node"].square().mean() + b["h_edge"].square().mean()).backward()
    for (n, p), q in zip(padded.named_parameters(), compact.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=1e-12, rtol=1e-9, msg=n)


def test_quickstart_batch_equals_padded_float32():
    batch, basis = quickstart_batch()
    padded, compact = model_pair(basis, 5.0)
    padded, compact = padded.float(), compact.float()
    for key in ("pos", "cell", "cell_shift"):
        batch[key] = batch[key].float()
    with torch.no_grad():
        a, b = padded(batch), compact(batch)
    for key in ("h_node", "h_edge"):
        scale = a[key].abs().max()
        assert scale > 1e-3
        assert (b[key] - a[key]).abs().max() <= 1e-6 * scale


def orbital_rotation(q: torch.Tensor, basis: BasisTable) -> torch.Tensor:
    """D of an O(3) matrix on the union orbitals in e3nn's basis (orbital l has parity (-1)^l)."""
    with float64_constants():
        return torch.block_diag(*[o3.Irrep(l, (-1) ** l).D_from_matrix(q) for l in basis.union_shells])


@pytest.mark.parametrize("improper", [False, True])
def test_compact_model_equivariant_on_mixed_batch(improper):
    _, model = model_pair(MIXED, CUTOFF)
    batch = mixed_batch()
    torch.manual_seed(3)
    q = o3.rand_matrix(dtype=torch.float64) * (-1 if improper else 1)
    turned = batch.clone()
    turned.pos, turned.cell = batch.pos @ q.T, batch.cell @ q.T
    with torch.no_grad():
        out, out_rot = model(batch), model(turned)
    d = orbital_rotation(q, MIXED)
    for key in ("h_node", "h_edge"):
        h = openmx_to_e3nn_blocks(out[key], MIXED.union_shells)
        h_rot = openmx_to_e3nn_blocks(out_rot[key], MIXED.union_shells)
        assert h.abs().max() > 1e-2
        torch.testing.assert_close(h_rot, d @ h @ d.T, atol=1e-9, rtol=1e-7)


def test_unknown_readout_rejected():
    with pytest.raises(ValueError, match="readout"):
        build_model("deeph2", basis=MIXED.to_dict(), cutoff=CUTOFF, readout="sparse", **TINY)


def test_old_checkpoint_state_dict_loads_into_compact_model():
    """The readout has no parameters: a state dict saved before the compact readout loads unchanged."""
    padded, compact = model_pair(MIXED, CUTOFF)
    assert list(padded.state_dict()) == list(compact.state_dict())
    assert np.all([padded.state_dict()[k].shape == v.shape for k, v in compact.state_dict().items()])


def test_compact_table_stays_float64_through_a_cast():
    readout = CompactReadout(MIXED, 4).to(torch.float32)
    assert readout.table.dtype == torch.float64
