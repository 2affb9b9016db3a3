"""Fixtures of the evaluation tests (helpers live in pyscf_integrals.py: conftest modules are not importable by name)."""

from __future__ import annotations


import pytest
from ase.build import bulk

from pyscf_integrals import integral_structure


@pytest.fixture(scope="session")
def si_integrals():
    """Bulk Si (2 atoms, gth-szv: s + p per atom): kinetic 'Hamiltonian' and overlap, plus the PySCF cell."""
    return integral_structure(bulk("Si", "diamond", a=5.43), n_electrons=8)


@pytest.fixture(scope="session")
def trained_model(dft_folders, tmp_path_factory):
    """A real checkpoint: the tiny DeepH-2 trained a few steps by train.py's code on real DFT Si + LiH.

    Packed at a 5 Å cutoff from DFT folders that hold blocks to 6 Å, so the reference has blocks beyond the
    model's reach (a non-zero truncation floor). Both structures are in every split (a 2-structure set).
    float64 training, so the trainer's own test metric is an exact reference for ``deeph-eval test``.
    Returns (checkpoint path, training result dict, packed dataset path, DeepH folders).
    """
    import json
    from pathlib import Path

    from data_prep.lmdb_dataset import pack_folders

    from lightning_helpers import compose, train_overrides  # the training engineer's test configs

    from deeph_lightning.training import run

    root = tmp_path_factory.mktemp("eval_model")
    data = pack_folders([str(f) for f in dft_folders], root / "data.lmdb", cutoff=5.0, progress=False)
    meta_file = data / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["splits"] = {name: list(range(meta["length"])) for name in ("train", "val", "test")}
    meta_file.write_text(json.dumps(meta, indent=1))
    cfg = compose(train_overrides(data, 200_000, trainer__max_steps=8, trainer__max_epochs=1000,
                                  model__optimizer__lr=0.01, model__scheduler__warmup_steps=2,
                                  trainer__precision="64-true", data__cutoff="5.0"), root / "run")
    result = run(cfg)
    return Path(result["best_checkpoint"]), result, data, dft_folders
