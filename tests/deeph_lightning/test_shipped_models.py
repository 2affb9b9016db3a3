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
