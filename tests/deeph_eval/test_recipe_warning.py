"""A checkpoint tested on data from another DFT recipe says so: the error then includes the recipe difference."""

import json
import shutil
import warnings

import pytest

from deeph_eval.cli import main
from deeph_eval.model_io import RecipeWarning, recipe_differences


def test_recipe_differences_names_each_differing_entry():
    model = {"code": "pyscf", "xc": "pbe", "basis": "SZV-MOLOPT-SR-GTH", "pseudo": "gth-pbe"}
    assert recipe_differences(model, dict(model, xc="PBE")) == []  # names are case-insensitive
    assert recipe_differences(model, {"xc": "lda", "basis": "DZVP-MOLOPT-SR-GTH"}) == [
        "basis SZV-MOLOPT-SR-GTH (model) vs DZVP-MOLOPT-SR-GTH (data)", "xc pbe (model) vs lda (data)"]
    assert recipe_differences(None, model) == [] and recipe_differences(model, {}) == []
    # another release of the same program is the same recipe; another program is not
    assert recipe_differences(dict(model, code="pyscf 2.14.0"), dict(model, code="pyscf 2.14.0, pyscf 2.15.0")) == []
    assert recipe_differences(dict(model, code="pyscf 2.14.0"), dict(model, code="cp2k 2024.1")) == [
        "code pyscf 2.14.0 (model) vs cp2k 2024.1 (data)"]


def test_test_on_other_recipe_data_warns_and_records_it(trained_model, tmp_path):
    ckpt, _, _, folders = trained_model
    same, other = tmp_path / "same", tmp_path / "other"
    for f in folders:
        shutil.copytree(f, same / f.name)
        shutil.copytree(f, other / f.name)
        info = json.loads((other / f.name / "info.json").read_text())
        assert info["dft"]["xc"].lower() == "pbe"
        info["dft"]["xc"] = "lda"
        (other / f.name / "info.json").write_text(json.dumps(info))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecipeWarning)
        assert main(["test", "--ckpt", str(ckpt), "--data", str(same), "--out", str(tmp_path / "same.json")]) == 0
    with pytest.warns(RecipeWarning, match="xc pbe \\(model\\) vs lda \\(data\\)") as caught:
        assert main(["test", "--ckpt", str(ckpt), "--data", str(other), "--out", str(tmp_path / "other.json")]) == 0
    assert len([w for w in caught if w.category is RecipeWarning]) == 1  # once, not once per structure
    report = json.loads((tmp_path / "other.json").read_text())
    assert report["recipe_mismatch"][0]["xc"] == "lda"
    assert "recipe_mismatch" not in json.loads((tmp_path / "same.json").read_text())
