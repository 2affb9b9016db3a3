"""float32 robustness: symmetric crystals, where whole irrep sectors vanish by symmetry (1o/2e on a diamond
site, all odd l and 2e on a rocksalt site), must give the same blocks for a cell, its 2×1×1 supercell and a
rotated copy to float32 accuracy, and agree with float64. (A per-degree layer norm amplified the rounding
noise of those sectors to O(1): 0.1-4 eV between equivalent atoms.)"""

import numpy as np
import pytest
import torch
from ase.build import bulk
from e3nn import o3
from torch_geometric.data import Batch

from data_prep.torch_data import edge_vectors
from deeph_lightning.models.readout import openmx_to_e3nn_blocks

from model_structures import BASIS, STRUCTURES, graph
from test_model_symmetry import make_model, orbital_rotation

REL_TOL = 1e-5  # of the largest block entry: float32 eps × a few dozen operations' worth of rounding


def symmetric_crystals():
    si = bulk("Si", "diamond", a=5.43)
    feo = bulk("FeO", "rocksalt", a=4.3)
    feo.numbers[:] = [26, 8]
    return {"Si-diamond": si, "FeO-rocksalt": feo}


def perturbed(model, seed):
    """Random weights of realistic spread around the initialisation (norm scales ≠ 1, biases ≠ 0),
    standing in for a trained model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            spread = p.std() if p.numel() > 1 and p.std() > 0 else torch.tensor(1.0)
            p.add_(0.5 * spread * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def predict(model, atoms, dtype):
    data = graph(atoms.numbers, atoms.positions, np.array(atoms.cell[:]), np.array([True] * 3), dtype=dtype)
    with torch.no_grad():
        out = model(Batch.from_data_list([data]))
    return out, data


def edge_keys(data, n_cell):
    """(atom of the primitive cell, bond vector rounded to 1e-4 Å) of every edge: the same bond in a cell
    and its supercell has the same key."""
    vec = edge_vectors(data).double().numpy()
    return [(int(i) % n_cell, *np.round(v, 4)) for i, v in zip(data.edge_index[0].numpy(), vec)]


MODELS = [("deeph2", "untrained", s) for s in (0, 1)] + [("deeph2", "perturbed", s) for s in (2, 3, 4)]
MODELS += [("deeph_e3", "perturbed", 5)]  # same layer norm and gates, e3nn tensor-product messages


@pytest.mark.parametrize("crystal", ["Si-diamond", "FeO-rocksalt"])
@pytest.mark.parametrize("name,kind,seed", MODELS)
def test_float32_cell_supercell_rotation_agree(crystal, name, kind, seed):
    atoms = symmetric_crystals()[crystal]
    model = make_model(name, dtype=torch.float32, seed=seed)
    if kind == "perturbed":
        model = perturbed(model, seed)
    model64 = make_model(name, dtype=torch.float64, seed=seed)
    model64.load_state_dict(model.state_dict())

    n = len(atoms)
    cell, cell_data = predict(model, atoms, torch.float32)
    ref, _ = predict(model64, atoms, torch.float64)
    sup, sup_data = predict(model, atoms.repeat((2, 1, 1)), torch.float32)
    scale = max(ref["h_node"].abs().max(), ref["h_edge"].abs().max())
    assert scale > 1e-2

    # float32 vs float64 of the same weights
    for key in ("h_node", "h_edge"):
        assert (cell[key].double() - ref[key]).abs().max() < REL_TOL * scale, key

    # supercell atoms k and k + n are copies of cell atom k; hoppings matched by (atom, bond vector)
    assert (sup["h_node"].double() - cell["h_node"].double().repeat(2, 1, 1)).abs().max() < REL_TOL * scale
    index = {k: e for e, k in enumerate(edge_keys(cell_data, n))}
    match = [index[k] for k in edge_keys(sup_data, n)]
    assert (sup["h_edge"].double() - cell["h_edge"].double()[match]).abs().max() < REL_TOL * scale

    # rotated copy: same edges in the same order, blocks rotated by the orbital Wigner-D
    torch.manual_seed(seed)
    q = o3.rand_matrix(dtype=torch.float64)
    turned = atoms.copy()
    turned.set_cell(atoms.cell[:] @ q.numpy().T, scale_atoms=True)
    rot, _ = predict(model, turned, torch.float32)
    d = orbital_rotation(q)
    for key in ("h_node", "h_edge"):
        h = openmx_to_e3nn_blocks(cell[key].double(), BASIS.union_shells)
        h_rot = openmx_to_e3nn_blocks(rot[key].double(), BASIS.union_shells)
        assert (h_rot - d @ h @ d.T).abs().max() < REL_TOL * scale, key


@pytest.mark.parametrize("cast", [torch.float32, torch.bfloat16])
def test_float64_constants_survive_a_low_precision_round_trip(cast):
    """Wigner-D, 3j table and masks stay float64 buffers through .to(float32/bfloat16): a model cast down and
    back up is the float64 model, not one with constants rounded to float32."""
    z, pos, cell, pbc = STRUCTURES[0]
    data = Batch.from_data_list([graph(z, pos, cell, pbc)])
    fresh = make_model("deeph2", dtype=torch.float64, seed=0)
    trip = make_model("deeph2", dtype=torch.float64, seed=0)
    trip.load_state_dict(fresh.state_dict())
    trip = trip.to(cast).double()
    trip.load_state_dict(fresh.state_dict())  # parameters back to the exact float64 values
    assert trip.frame.dq2.dtype == torch.float64 and trip.heads.readout.table.dtype == torch.float64
    with torch.no_grad():
        a, b = fresh(data), trip(data)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-13, rtol=0)
