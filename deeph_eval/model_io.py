"""Trained checkpoints for evaluation: load in inference precision, and find the DFT recipe the model was trained on.

Loading goes through the checkpoint format, ``deeph_lightning.models.checkpoint``, which refuses files of
another format and checkpoints whose units/orbital order are not the ones every deeph_eval routine assumes
(Å, eV, OpenMX order). ``dft_recipe`` is needed to compute S(R) for structures without DFT data and to count
valence electrons: it is read from the checkpoint's metadata (``meta["dft_recipe"]``), else from the
metadata.json of the dataset the run was trained on (``meta["config"]["data"]["path"]``), when that exists.
"""

from __future__ import annotations

import json
import warnings
import os
from pathlib import Path

from typing import TYPE_CHECKING

from data_prep.basis import element_symbol
from data_prep.lmdb_dataset import code_name

if TYPE_CHECKING:  # the checkpoint format imports torch: loaded when a checkpoint is, so command lines start fast
    from deeph_lightning.models.checkpoint import LoadedModel


class ModelInputError(ValueError):
    """A structure, checkpoint or option does not fit the model (unknown element, other basis, ...)."""


def load_checkpoint(ckpt_path: str | os.PathLike, map_location="cpu", dtype: str = "float64") -> LoadedModel:
    """The checkpoint's model (``CheckpointError`` for a file that is not one), cast to ``dtype``.

    Inference runs in float64 by default: the same trained function, but float32 rounding is amplified in
    high-symmetry environments (l > 0 features that vanish by symmetry get normalised), which on a small
    DeepH-2 gave 0.1 eV differences between equivalent atoms of a crystal and of its supercell.
    ``dtype="float32"`` reproduces the trainer's own arithmetic.
    """
    import torch

    from deeph_lightning.models.checkpoint import load_model

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    loaded = load_model(ckpt_path, map_location=map_location)
    loaded.meta.setdefault("path", str(ckpt_path))
    loaded.model.to(getattr(torch, dtype))
    return loaded


def check_known_elements(loaded: LoadedModel, numbers, where: str) -> None:
    missing = loaded.basis.unknown(numbers)
    if missing:
        raise ModelInputError(
            f"{where}: element(s) {', '.join(element_symbol(z) for z in missing)} unknown to the model "
            f"(it was trained on {loaded.basis.symbols}; fine-tuning on DFT data that has them adds them: "
            "docs/training.md, \"Fine-tuning a trained model\")"
        )


def dft_recipe(loaded: LoadedModel) -> dict | None:
    """{'basis': ..., 'pseudo': ..., 'xc': ..., 'code': ...} of the training data, or None when unknown."""
    recipe = loaded.meta.get("dft_recipe")
    if recipe:
        return dict(recipe)
    data_path = ((loaded.meta.get("config") or {}).get("data") or {}).get("path")
    if data_path:
        meta_file = Path(data_path) / "metadata.json"
        if meta_file.is_file():
            try:
                recipe = json.loads(meta_file.read_text()).get("dft_recipe")
            except (json.JSONDecodeError, OSError):
                recipe = None
            if recipe:
                return dict(recipe)
    return None


class RecipeWarning(UserWarning):
    """The reference data was computed with another DFT recipe than the model's training data."""


def recipe_differences(model_recipe: dict | None, data_recipe: dict | None) -> list[str]:
    """'key: model vs data' for each recipe entry recorded on both sides that differs (case-insensitive; for
    ``code`` the program, not its version)."""
    if not model_recipe or not data_recipe:
        return []

    def value(key, recipe):
        return code_name(recipe[key]) if key == "code" else str(recipe[key]).lower()

    return [f"{k} {model_recipe[k]} (model) vs {data_recipe[k]} (data)" for k in sorted(model_recipe)
            if k in data_recipe and value(k, model_recipe) != value(k, data_recipe)]


def warn_if_other_recipe(loaded: LoadedModel, data_recipe: dict | None, where: str) -> bool:
    """Warn (once per call) when ``data_recipe`` differs from the training data's: the comparison then measures
    the recipe difference as well as the model. Returns whether it warned."""
    diffs = recipe_differences(dft_recipe(loaded), data_recipe)
    if diffs:
        warnings.warn(f"{where}: computed with another DFT recipe than the model's training data ({'; '.join(diffs)}); "
                      "its errors include the difference between the recipes", RecipeWarning, stacklevel=2)
    return bool(diffs)


def dft_settings(loaded: LoadedModel, basis_override: str | None = None):
    """``data_prep.dft.DFTSettings`` with the training data's basis/pseudo (or ``basis_override``); None if unknown."""
    from data_prep.dft import DFTSettings

    recipe = dft_recipe(loaded) or {}
    basis = basis_override or recipe.get("basis")
    if not basis:
        return None
    kw = {"basis": basis}
    if recipe.get("pseudo"):
        kw["pseudo"] = recipe["pseudo"]
    if recipe.get("xc"):
        kw["xc"] = recipe["xc"]
    return DFTSettings(**kw)


class OutsideTrainingWarning(UserWarning):
    """A structure has nearest-neighbour bonds of an element pair the model's training set never bonded, or
    shorter than any it had."""


def outside_training(loaded: LoadedModel, data) -> list[str]:
    """The nearest-neighbour bonds of graph ``data`` outside the checkpoint's ``training_bonds``
    (``data_prep.bonds.unfamiliar_bonds``); [] for checkpoints without the record."""
    table = loaded.training_bonds
    if table is None:
        return []
    from data_prep.bonds import first_shell_bonds, unfamiliar_bonds
    from data_prep.torch_data import edge_vectors

    lengths = edge_vectors(data).norm(dim=1).double().numpy()
    return unfamiliar_bonds(table, first_shell_bonds(data.atomic_numbers.numpy(), data.edge_index.numpy(), lengths))


def warn_outside_training(name: str, bonds: list[str]) -> None:
    if bonds:
        warnings.warn(f"{name}: bonds outside the model's training set: {'; '.join(bonds)}. Expect the largest errors "
                      "in these blocks (docs/evaluation.md, 'Bonds the model never saw')", OutsideTrainingWarning,
                      stacklevel=3)
