"""Shared fixtures. Tests run real code on real data; DFT-made fixtures are built once per session."""

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch.float64
    torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def dft_folders(tmp_path_factory):
    """Two small real DFT results (bulk Si, rocksalt LiH) as DeepH folders, made by our PySCF runner.

    Cheap settings (2x2x2 SCF mesh, blocks to 6 Å): fine for format/graph/LMDB tests, not for accuracy.
    """
    from ase.build import bulk

    from data_prep.deeph_format import write_deeph
    from data_prep.dft import DFTSettings, run_dft

    root = tmp_path_factory.mktemp("dft")
    settings = DFTSettings(kmesh=(2, 2, 2), radius=6.0, threads=2)
    folders = []
    for name, atoms in (("si", bulk("Si", "diamond", a=5.43)), ("lih", bulk("LiH", "rocksalt", a=4.0))):
        folders.append(write_deeph(run_dft(atoms, settings, name).structure, root / name))
    return folders
