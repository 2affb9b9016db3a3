"""Helpers of the training tests: the test dataset (packed once per session) and configs composed
like train.py composes them. Test modules import the ``train_lmdb`` fixture from here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

# The smallest DeepH-2 that still has every part (one layer, few channels): keeps each test to seconds.
TINY_NET = [
    "model.net.channels=8", "model.net.pseudo_channels=4", "model.net.layers=1", "model.net.heads=2",
    "model.net.num_radial=6", "model.net.hidden_radial=16", "model.ema_decay=0.9",
]


def source_folders() -> list[str]:
    """DeepH folders for the test dataset: the embedded quickstart data (DEEPH_TEST_FOLDERS overrides)."""
    if os.environ.get("DEEPH_TEST_FOLDERS"):
        return [os.environ["DEEPH_TEST_FOLDERS"]]
    from data_prep.embedded import quickstart_path

    return [str(quickstart_path())]


def test_cutoff() -> float:
    """The quickstart config's cutoff (DEEPH_TEST_CUTOFF overrides, e.g. for folders with shorter blocks)."""
    if os.environ.get("DEEPH_TEST_CUTOFF"):
        return float(os.environ["DEEPH_TEST_CUTOFF"])
    from omegaconf import OmegaConf

    return float(OmegaConf.load(Path(CONF_DIR) / "data" / "quickstart.yaml")["cutoff"])


_PACKED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def train_lmdb(tmp_path_factory) -> Path:
    """The embedded dataset packed once per session (real DFT blocks)."""
    from data_prep.lmdb_dataset import pack_folders

    key = ",".join(source_folders())
    if key not in _PACKED:
        out = tmp_path_factory.mktemp("train_data") / "quickstart.lmdb"
        _PACKED[key] = pack_folders(source_folders(), out, cutoff=test_cutoff(), split_seed=0,
                                    split_fractions=(0.6, 0.2, 0.2), progress=False)
    return _PACKED[key]


def compose(overrides: list[str], output_dir: Path | None = None):
    """Compose conf/train.yaml like train.py does (Hydra compose API), with a fixed output folder."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides + extra)


def train_overrides(dataset: Path, budget: int, **kw) -> list[str]:
    """Quickstart on ``dataset`` with the tiny net, CSV logs, no progress output, validation every epoch (the
    quickstart validates every 4th; these runs are a few epochs long)."""
    kw = {"trainer__check_val_every_n_epoch": 1, **kw}
    out = [
        "+experiment=quickstart", f"data.path={dataset}", "data.pack_from=null", f"data.global_budget={budget}",
        "logger=csv", "trainer.enable_progress_bar=false", "callbacks.plain_progress.every_n_steps=1000",
        *TINY_NET,
    ]
    out += [f"{k.replace('__', '.')}={v}" for k, v in kw.items()]
    return out


def budget_for(dataset: Path, structures_per_batch: int) -> int:
    """A per-batch budget (padded matrix elements) of ``structures_per_batch`` median-sized structures."""
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(dataset)
    m = ds.metadata
    sizes = (np.asarray(m["n_atoms"]) + np.asarray(m["n_edges"])) * ds.basis.n_union**2
    return int(np.sort(sizes)[len(sizes) // 2] * structures_per_batch)
