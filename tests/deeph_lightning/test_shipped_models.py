"""The pretrained models shipped in the repository load by name from a fresh clone and reproduce the test
MAE recorded when they were shipped, on a structure of a shipped dataset."""

import pytest

from deeph_lightning.models.checkpoint import load_model
from deeph_lightning.models.pretrained import SHIPPED, shipped_models
from deeph_lightning.ship_model import check_mae

MODELS = shipped_models()


def test_the_universal_mini_model_is_shipped():
    assert "universal-mini" in MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_loads_by_name_and_reproduces_its_recorded_error(name):
    entry = MODELS[name]
    file = SHIPPED / entry["file"]
    assert file.stat().st_size <= 20e6
    loaded = load_model(name)
    assert loaded.meta["basis"] and loaded.cutoff > 0
    check = entry["check"]
    assert check_mae(name, check["dataset"], check["id"]) == pytest.approx(check["mae_meV"], rel=1e-4)
    card = (SHIPPED / f"{name}.md").read_text()
    assert f"--ckpt {name}" in card and "| element |" in card


def test_the_card_says_which_held_out_bonds_the_model_never_saw(tmp_path):
    import json
    import shutil

    from data_prep.embedded import dataset_path
    from deeph_eval.cli import main as deeph_eval
    from deeph_lightning.models.checkpoint import read_checkpoint
    from deeph_lightning.ship_model import card, report_section

    meta = read_checkpoint(SHIPPED / MODELS["universal-mini"]["file"])["deeph"]
    assert "Al-As" not in meta["training_bonds"]  # AlAs is a held-out composition
    shutil.copytree(dataset_path("universal-mini") / "AlAs_zincblende_s0_00090", tmp_path / "data" / "AlAs")
    assert deeph_eval(["test", "--ckpt", "universal-mini", "--data", str(tmp_path / "data"),
                       "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    section = "\n".join(report_section("held out", report))
    never = report["first_shell"]["pairs_never_bonded_in_training"]
    assert never["pairs"] == ["Al-As"]
    assert f"Of element pairs never bonded in training (Al-As): {never['mae_meV']:.1f} meV" in section
    text = card("universal-mini", "summary", meta, {"held out": report}, MODELS["universal-mini"]["check"])
    assert f"| nearest-neighbour pairs in training | {len(meta['training_bonds'])} " in text
    assert "`python train.py ... finetune_from=universal-mini`" in text and "--cutoff 9`" in text
    assert "fine-tuned from" not in text  # trained from scratch


def test_bands_of_a_caesium_halide_from_its_geometry_grow_the_overlap_radius(tmp_path, capsys):
    """CsCl from a structure file: S(R) cut at 9.5 Å is indefinite at the zone boundary (Cs 6s is diffuse), so no
    band could be computed. Without --overlap-radius the overlaps grow until S(k) is positive definite. Its
    shipped DFT folder keeps the stored 9.5 Å blocks: `test --bands` says it skipped their band errors."""
    import json
    import shutil

    from ase.io import write

    from data_prep.deeph_format import read_deeph
    from data_prep.embedded import dataset_path
    from deeph_eval.cli import main as deeph_eval
    from deeph_eval.inference import DEFAULT_OVERLAP_RADIUS, OVERLAP_RADIUS_STEP, to_atoms

    st = read_deeph(dataset_path("universal-mini") / "CsCl_cscl_s0_00362", hamiltonian=False, overlap=False)
    write(tmp_path / "CsCl.extxyz", to_atoms(st))
    args = ["--ckpt", "universal-mini", "--structure", str(tmp_path / "CsCl.extxyz")]
    assert deeph_eval(["bands", *args, "--overlap-radius", "9.5", "--out", str(tmp_path / "fixed")]) == 2
    assert deeph_eval(["bands", *args, "--out", str(tmp_path / "grown")]) == 0
    assert json.loads((tmp_path / "grown" / "bands.json").read_text())["filling"]["gap"] > 0
    assert deeph_eval(["predict", *args, "--out", str(tmp_path / "pred")]) == 0
    source = json.loads((tmp_path / "pred" / "info.json").read_text())["overlap_source"]
    radius = float(source.split("pairs within ")[1].split(" Å")[0])  # 14.5 Å for this cell
    assert radius > DEFAULT_OVERLAP_RADIUS and (radius - DEFAULT_OVERLAP_RADIUS) % OVERLAP_RADIUS_STEP == 0

    shutil.copytree(dataset_path("universal-mini") / "CsCl_cscl_s0_00362", tmp_path / "data" / "CsCl")
    capsys.readouterr()
    assert deeph_eval(["test", "--ckpt", "universal-mini", "--data", str(tmp_path / "data"), "--bands",
                       "--out", str(tmp_path / "r.json")]) == 0
    assert "band errors skipped for 1 structure(s)" in capsys.readouterr().out
    skipped = json.loads((tmp_path / "r.json").read_text())["structures"][0]["band_error_skipped"]
    assert "not positive definite" in skipped
