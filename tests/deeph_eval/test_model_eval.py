"""deeph-eval on a real trained checkpoint: predict_blocks, predict/bands/test commands, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk

from data_prep.deeph_format import check_hermitian, read_deeph, write_deeph
from data_prep.graph import neighbor_graph
from data_prep.torch_data import structure_to_data
from deeph_eval.blocklist import BlockList, supercell_blocks
from deeph_eval.cli import main
from deeph_eval.gauge import model_hamiltonian
from deeph_eval.model_io import load_checkpoint
from deeph_eval.predict import predict_blocks, predict_many
from deeph_eval.truncation import model_blocks

pytestmark = pytest.mark.slow  # the session fixture runs DFT and trains a model


@pytest.fixture(scope="module")
def loaded(trained_model):
    return load_checkpoint(trained_model[0])


@pytest.fixture(scope="module")
def si_folder(trained_model):
    return next(f for f in trained_model[3] if f.name == "si")


def test_predict_blocks_are_the_networks_blocks_cut_to_each_atom(loaded, si_folder):
    st = read_deeph(si_folder)
    blocks = predict_blocks(loaded, st)
    ei, shift, _ = neighbor_graph(st.cell, st.positions, st.pbc, loaded.cutoff)
    expected = {(0, 0, 0, a, a) for a in range(st.n_atoms)}
    expected |= {(*map(int, r), int(i), int(j)) for (i, j), r in zip(ei.T, shift)}
    assert set(blocks) == expected
    assert all(b.shape == (4, 4) and b.dtype == np.float64 for b in blocks.values())  # Si: s + p
    assert check_hermitian(blocks, "predicted", tol=1e-5) < 1e-5
    # independent path: the raw padded network output at the union slots of the two atoms
    data = structure_to_data(st.numbers, st.positions, st.cell, st.pbc, loaded.cutoff, loaded.basis, torch.float64)
    from torch_geometric.data import Batch

    with torch.no_grad():
        out = loaded.model(Batch.from_data_list([data]))
    slots = loaded.basis.union_slots(14)
    e = 3
    key = (*np.rint(data.cell_shift[e].numpy()).astype(int).tolist(), *data.edge_index[:, e].tolist())
    np.testing.assert_array_equal(blocks[key], out["h_edge"][e].numpy()[np.ix_(slots, slots)])
    np.testing.assert_array_equal(blocks[(0, 0, 0, 1, 1)], out["h_node"][1].numpy()[np.ix_(slots, slots)])


def test_supercell_prediction_is_the_tiled_unit_cell_prediction(loaded, si_folder):
    """Locality + translation invariance: a 2x2x1 Si supercell gets exactly the unit cell's blocks, in one
    batch with other structures or alone."""
    st = read_deeph(si_folder)
    unit = predict_blocks(loaded, st)
    sc = bulk("Si", "diamond", a=5.43).repeat((2, 2, 1))
    from deeph_eval.blocklist import supercell_geometry

    cell, pos, numbers = supercell_geometry(st.cell, st.positions, st.numbers, (2, 2, 1))
    sc.set_cell(cell)
    sc.set_positions(pos)
    sc.set_atomic_numbers(numbers)
    tiled = supercell_blocks(BlockList.from_blocks(unit, st.n_orbitals()), (2, 2, 1)).to_blocks()
    lih = read_deeph(next(f for f in loaded_folders(si_folder) if f.name == "lih"))
    together = list(predict_many(loaded, [lih, sc, st], max_graph_size=10**7))
    alone = [predict_blocks(loaded, s, max_graph_size=1) for s in (lih, sc, st)]
    assert set(together[1]) == set(tiled)
    for k in tiled:
        np.testing.assert_allclose(together[1][k], tiled[k], atol=1e-9)
    for a, b in zip(together, alone):
        assert set(a) == set(b)
        assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-9


def loaded_folders(si_folder):
    return sorted(si_folder.parent.iterdir())


def test_predict_cli_writes_a_deeph_folder(trained_model, loaded, si_folder, tmp_path, capsys):
    ckpt = str(trained_model[0])
    assert main(["predict", "--ckpt", ckpt, "--structure", str(si_folder), "--out", str(tmp_path / "a")]) == 0
    cif = tmp_path / "POSCAR"  # POSCAR keeps the cell as given (a CIF round trip re-orients it)
    bulk("Si", "diamond", a=5.43).write(cif, format="vasp")
    assert main(["predict", "--ckpt", ckpt, "--structure", str(cif), "--out", str(tmp_path / "b")]) == 0
    a, b, ref = read_deeph(tmp_path / "a"), read_deeph(tmp_path / "b"), read_deeph(si_folder)
    # the network's blocks, in the gauge the model learned (a standardised model's own μ·S removed)
    pred = model_hamiltonian(loaded, ref.numbers, predict_blocks(loaded, ref), ref.overlaps)
    assert set(model_blocks(a)) == set(pred) and a.info["model_cutoff"] == 5.0
    assert max(np.abs(a.hamiltonians[k] - pred[k]).max() for k in pred) == 0
    assert set(a.overlaps) == set(ref.overlaps)  # S taken from the folder (6 Å pairs)
    # one pair set: H is written as exact zeros on S's pairs beyond the 5 Å model cutoff
    assert set(a.hamiltonians) == set(a.overlaps) > set(pred)
    assert all(not a.hamiltonians[k].any() for k in set(a.hamiltonians) - set(pred))
    assert set(b.hamiltonians) == set(b.overlaps)
    # S from integrals in the training data's basis (SZV-MOLOPT-SR-GTH) reproduces the DFT run's S
    assert set(ref.overlaps) <= set(b.overlaps)
    assert max(np.abs(b.overlaps[k] - ref.overlaps[k]).max() for k in ref.overlaps) < 1e-6
    assert a.info["n_electrons"] == b.info["n_electrons"] == 8
    # the stored Fermi level is the VBM that `bands` finds on the predicted folder
    assert main(["bands", "--hamiltonian", str(tmp_path / "a"), "--out", str(tmp_path / "bands"),
                 "--npoints", "30", "--kspacing", "0.2"]) == 0
    bands = json.loads((tmp_path / "bands" / "bands.json").read_text())
    if not bands["filling"]["is_metal"]:
        assert a.fermi_level == pytest.approx(bands["filling"]["vbm"], abs=0.05)
    # all-or-nothing: an existing folder is refused, nothing half-written is left behind
    assert main(["predict", "--ckpt", ckpt, "--structure", str(cif), "--out", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["POSCAR", "a", "b", "bands"]


def test_predict_cli_reads_and_writes_the_v1_layout(trained_model, si_folder, tmp_path):
    ckpt = str(trained_model[0])
    write_deeph(read_deeph(si_folder), tmp_path / "si_v1", layout="v1")
    assert main(["predict", "--ckpt", ckpt, "--structure", str(si_folder), "--out", str(tmp_path / "legacy")]) == 0
    assert main(["predict", "--ckpt", ckpt, "--structure", str(tmp_path / "si_v1"), "--out", str(tmp_path / "v1"),
                 "--format", "v1"]) == 0
    written = sorted(p.name for p in (tmp_path / "v1").iterdir() if not p.name.startswith("."))
    assert written == ["POSCAR", "hamiltonian.h5", "info.json", "overlap.h5"]
    legacy, v1 = read_deeph(tmp_path / "legacy"), read_deeph(tmp_path / "v1")
    assert v1.layout == "v1" and v1.info["overlap_source"].endswith("si_v1/overlap.h5")
    assert v1.fermi_level == pytest.approx(legacy.fermi_level, abs=1e-9)  # k-sums in another block order
    assert v1.info["n_electrons"] == legacy.info["n_electrons"]
    for name in ("hamiltonians", "overlaps"):
        x, y = getattr(legacy, name), getattr(v1, name)
        assert x.keys() == y.keys()
        assert all(np.array_equal(x[k], y[k]) for k in x), name


def test_bands_cli_reports_model_error_and_truncation_floor(trained_model, loaded, si_folder, tmp_path):
    ckpt = str(trained_model[0])
    opts = ["--npoints", "30", "--kspacing", "0.3"]
    assert main(["bands", "--ckpt", ckpt, "--reference", str(si_folder), "--out", str(tmp_path / "m"), *opts]) == 0
    data = json.loads((tmp_path / "m" / "bands.json").read_text())
    floor, model = data["truncation_floor"], data["band_errors"]
    assert floor["cutoff_A"] == loaded.cutoff == 5.0
    assert floor["mae_meV"] > 1.0  # the 6 Å reference has blocks a 5 Å model cannot predict
    assert model["mae_meV"] > 0
    # independent check of the floor: write the truncated reference by hand, compare with `bands --hamiltonian`
    ref = read_deeph(si_folder)
    ei, shift, _ = neighbor_graph(ref.cell, ref.positions, ref.pbc, 5.0)
    keep = {(0, 0, 0, a, a) for a in range(ref.n_atoms)} | {(*map(int, r), int(i), int(j)) for (i, j), r in
                                                              zip(ei.T, shift)}
    assert keep < set(ref.hamiltonians)
    ref.hamiltonians = {k: v for k, v in ref.hamiltonians.items() if k in keep}
    write_deeph(ref, tmp_path / "trunc")
    assert main(["bands", "--hamiltonian", str(tmp_path / "trunc"), "--reference", str(si_folder),
                 "--out", str(tmp_path / "t"), *opts]) == 0
    by_hand_json = json.loads((tmp_path / "t" / "bands.json").read_text())
    by_hand = by_hand_json["band_errors"]
    assert floor["mae_meV"] == pytest.approx(by_hand["mae_meV"], rel=1e-9)
    ref_fill = by_hand_json["reference"]["filling"]
    assert not ref_fill["is_metal"]  # Si
    if not by_hand_json["filling"]["is_metal"]:  # gap error reported, conduction bands outside the window or not
        assert by_hand["gap_error_meV"] == pytest.approx(1000 * (by_hand_json["filling"]["gap"] - ref_fill["gap"]))
    else:
        assert "gap_error_meV" not in by_hand
    assert floor["max_abs_meV"] == pytest.approx(by_hand["max_abs_meV"], rel=1e-9)


def test_test_cli_matches_the_training_metric_and_skips_unknown_elements(trained_model, si_integrals, tmp_path):
    ckpt, result, data, folders = trained_model
    out = tmp_path / "report.json"
    assert main(["test", "--ckpt", str(ckpt), "--data", str(data), "--split", "test", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    # independent reference: the trainer's metric code (deeph_lightning.metrics) on the packed records' own
    # padded graphs, with the checkpoint's weights (EMA) run directly
    from torch_geometric.data import Batch

    from data_prep.lmdb_dataset import LmdbDataset
    from data_prep.torch_data import record_to_data
    from deeph_lightning.metrics import BlockErrorAccumulator
    from deeph_lightning.models.gauge import project_standardised, standardise_targets

    loaded = load_checkpoint(ckpt)
    ds = LmdbDataset(data)
    batch = Batch.from_data_list([record_to_data(ds[i], loaded.basis, torch.float64) for i in ds.split("test")])
    acc = BlockErrorAccumulator(loaded.basis)
    with torch.no_grad():
        pred = loaded.model(batch)
    if loaded.target_gauge == "standardised":  # the quickstart recipe: both sides in the <H,S> = 0 gauge
        standardise_targets(batch, loaded.basis)
        pred = project_standardised(pred, batch, loaded.basis)
    acc.update(batch, pred)
    assert rep["mae_meV"] == pytest.approx(acc.summary()["mae_meV"], rel=1e-9)
    assert {s["id"] for s in rep["structures"]} == {"si", "lih"}
    assert set(rep["per_element"]) == {"Si", "Li", "H"}
    every = rep["per_element_all_blocks"]  # an element's on-site blocks and every hopping that touches it
    pairs = rep["per_element_pair"]
    for el in ("Si", "Li", "H"):
        touching = [v for k, v in pairs.items() if el in k.split("-")]
        n = rep["per_element"][el]["n_values"] + sum(v["n_values"] for v in touching)
        err = rep["per_element"][el]["mae_meV"] * rep["per_element"][el]["n_values"] + sum(
            v["mae_meV"] * v["n_values"] for v in touching)
        assert every[el]["n_values"] == n and every[el]["mae_meV"] == pytest.approx(err / n, rel=1e-9)
    # DeepH folders + one with an element the model never saw (C) + band errors
    root = tmp_path / "folders"
    for f in folders:
        write_deeph(read_deeph(f), root / f.name)
    from pyscf_integrals import integral_structure

    c_st, _ = integral_structure(bulk("C", "diamond", a=3.57), n_electrons=8)
    write_deeph(c_st, root / "diamond")
    out2 = tmp_path / "r2" / "report.json"
    assert main(["test", "--ckpt", str(ckpt), "--data", str(root), "--out", str(out2), "--bands"]) == 0
    rep2 = json.loads(out2.read_text())
    by_id = {s["id"]: s for s in rep2["structures"]}
    assert by_id["diamond"]["status"] == "skipped" and "C" in by_id["diamond"]["reason"]
    assert "unknown to the model" in by_id["diamond"]["reason"]
    si = by_id["si"]
    assert si["band_errors"]["mae_meV"] > 0 and si["truncation_floor"]["mae_meV"] > 1.0
    # folders hold blocks beyond the cutoff: the block MAE is over the predicted blocks only, same as the LMDB
    assert main(["test", "--ckpt", str(ckpt), "--data", str(data), "--split", "test", "--out", str(out)]) == 0
    si_lmdb = next(s for s in json.loads(out.read_text())["structures"] if s["id"] == "si")
    assert si["mae_meV"] == pytest.approx(si_lmdb["mae_meV"], rel=1e-9)
    rows = (tmp_path / "r2" / "report.csv").read_text().splitlines()
    assert rows[0].startswith("id,status") and len(rows) == 4


def test_clear_errors(trained_model, tmp_path, capsys):
    ckpt = trained_model[0]
    # a checkpoint of another format
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    cif = tmp_path / "si.cif"
    bulk("Si", "diamond", a=5.43).write(cif)
    assert main(["predict", "--ckpt", str(foreign), "--structure", str(cif), "--out", str(tmp_path / "x")]) == 2
    assert "not a deeph-lightning checkpoint" in capsys.readouterr().err
    # an element the model does not know
    bulk("C", "diamond", a=3.57).write(tmp_path / "c.cif")
    assert main(["predict", "--ckpt", str(ckpt), "--structure", str(tmp_path / "c.cif"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "c.cif" in err and "C unknown to the model" in err and "Li, Si" in err
    # a structure in Bohr
    si_bohr = bulk("Si", "diamond", a=5.43 / 0.529177)
    si_bohr.write(tmp_path / "POSCAR", format="vasp")
    assert main(["predict", "--ckpt", str(ckpt), "--structure", str(tmp_path / "POSCAR"), "--out", str(tmp_path / "x")]) == 2
    assert "Bohr" in capsys.readouterr().err
    # a checkpoint that does not know its DFT basis, structure without overlaps
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    raw["deeph"]["config"]["data"]["path"] = str(tmp_path / "moved.lmdb")
    raw["deeph"].pop("dft_recipe", None)
    torch.save(raw, tmp_path / "no_recipe.ckpt")
    args = ["predict", "--ckpt", str(tmp_path / "no_recipe.ckpt"), "--structure", str(cif), "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "--dft-basis" in capsys.readouterr().err
    assert main(args + ["--dft-basis", "SZV-MOLOPT-SR-GTH"]) == 0
    # a checkpoint in other units
    raw["deeph"]["units"] = {"length": "bohr", "energy": "hartree"}
    torch.save(raw, tmp_path / "bohr.ckpt")
    assert main(["test", "--ckpt", str(tmp_path / "bohr.ckpt"), "--data", str(trained_model[2]), "--out",
                 str(tmp_path / "r.json")]) == 2
    assert "units" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_checkpoint_records_its_training_bonds_and_evaluation_names_bonds_outside_them(trained_model, loaded,
                                                                                          tmp_path, capsys):
    import warnings

    from data_prep.bonds import bond_table, record_bonds
    from data_prep.lmdb_dataset import LmdbDataset
    from deeph_eval.model_io import OutsideTrainingWarning
    from pyscf_integrals import integral_structure

    ckpt, _, data, folders = trained_model
    ds = LmdbDataset(data)
    assert loaded.training_bonds == bond_table(record_bonds(ds[i]) for i in ds.split("train"))
    assert set(loaded.training_bonds) == {"Si-Si", "H-Li"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideTrainingWarning)
        predict_blocks(loaded, bulk("Si", "diamond", a=5.43))  # the training structure: nothing to say
    with pytest.warns(OutsideTrainingWarning, match=r"Li-Si at 2\.50 Å \(no Li-Si nearest-neighbour bond in training\)"):
        predict_blocks(loaded, bulk("LiSi", "rocksalt", a=5.0))
    # deeph-eval predict also writes them into the predicted folder's info.json (the training Si: none)
    bulk("LiSi", "rocksalt", a=5.0).write(tmp_path / "lisi.cif")
    with pytest.warns(OutsideTrainingWarning):
        assert main(["predict", "--ckpt", str(ckpt), "--structure", str(tmp_path / "lisi.cif"),
                     "--out", str(tmp_path / "lisi")]) == 0
    assert read_deeph(tmp_path / "lisi").info["outside_training"] == [
        "Li-Si at 2.50 Å (no Li-Si nearest-neighbour bond in training)"]
    assert main(["predict", "--ckpt", str(ckpt), "--structure", str(folders[0]), "--out", str(tmp_path / "si")]) == 0
    assert read_deeph(tmp_path / "si").info["outside_training"] == []
    # deeph-eval test: first-shell errors per pair with the pair's training bonds; a compressed Si cell is named
    root = tmp_path / "folders"
    for f in folders:
        write_deeph(read_deeph(f), root / f.name)
    squeezed, _ = integral_structure(bulk("Si", "diamond", a=4.6), n_electrons=8)
    write_deeph(squeezed, root / "si_squeezed")
    out = tmp_path / "report.json"
    assert main(["test", "--ckpt", str(ckpt), "--data", str(root), "--out", str(out)]) == 0
    assert "1 structure(s) have nearest-neighbour bonds outside the model's training set" in capsys.readouterr().out
    rep = json.loads(out.read_text())
    by_id = {s["id"]: s for s in rep["structures"]}
    assert by_id["si_squeezed"]["outside_training"] == ["Si-Si at 1.99 Å (training's shortest Si-Si bond: 2.35 Å)"]
    assert "outside_training" not in by_id["si"]
    shell = rep["first_shell"]
    assert {k: v["training_bonds"] for k, v in shell["per_pair"].items()} == {"H-Li": 6, "Si-Si": 4}
    assert sum(v["n_values"] for v in shell["per_pair"].values()) == shell["n_values"]
    assert shell["pairs_bonded_in_training"]["pairs"] == ["H-Li", "Si-Si"]
    assert shell["pairs_bonded_in_training"]["mae_meV"] == pytest.approx(shell["mae_meV"], rel=1e-12)
    assert "pairs_never_bonded_in_training" not in shell
