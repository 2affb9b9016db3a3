"""W&B (offline): band plots of a validation structure are logged, and a resumed run continues the same W&B run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl

from deeph_lightning.callbacks.band_plot import ValidationBandsPlot
from deeph_lightning.training import run
from lightning_helpers import compose, train_lmdb, train_overrides  # noqa: F401 (fixture)


class CrashAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_band_plots_logged_and_wandb_run_resumed(train_lmdb, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    # one step per epoch, a validation after each; bands at steps 1, 3, ...; last.ckpt every 2 steps
    overrides = [o for o in train_overrides(train_lmdb, 10**9, trainer__max_steps=4, trainer__max_epochs=1000,
                                            callbacks__last_checkpoint__every_n_train_steps=2,
                                            callbacks__val_bands__every_n_steps=2, test_after_training=False)
                 if o != "logger=csv"] + ["logger=wandb"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose(overrides, run_dir), extra_callbacks=[CrashAt(3)])
    run(compose(overrides + ["ckpt_path=auto"], run_dir))

    first, resumed = offline_runs(run_dir)
    run_id = re.sub(r"^offline-run-\d+_\d+-", "", first.name)
    assert resumed.name.endswith(f"-{run_id}"), (first.name, resumed.name)  # the same W&B run continues
    for w in (first, resumed):
        assert len(list((w / "files" / "media" / "images" / "val").glob("bands_*.png"))) == 1, w
    # step 1 before the crash, step 3 after the resume (last.ckpt of step 2 restores the last plot's step)
    assert sorted(p.name for p in (run_dir / "bands").glob("*.png")) == ["val_bands_step0000001.png",
                                                                         "val_bands_step0000003.png"]


def test_band_plot_of_the_dft_hamiltonian_itself_has_zero_error(train_lmdb, tmp_path):
    """The reference path is exact: bands of the record's DFT blocks, compared with themselves."""
    from dataclasses import replace

    from deeph_eval.bands import compute_bands
    from deeph_lightning.callbacks.band_plot import band_mae_meV, record_structure
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(train_lmdb)
    st = record_structure(ds[ds.metadata["splits"]["val"][0]], ds.basis)
    assert st.info.get("n_electrons"), st.info  # read from the source folder's info.json
    ref = compute_bands(st, st.info["n_electrons"], npoints=20, kspacing=0.4)
    same = compute_bands(replace(st, hamiltonians=dict(st.hamiltonians)), st.info["n_electrons"], kpath=ref.kpath,
                         kspacing=0.4)
    assert band_mae_meV(ref, same, ref.filling.fermi_level, -6, 6) == 0.0
    shifted = compute_bands(replace(st, hamiltonians={k: v + 0.1 * st.overlaps[k] for k, v in st.hamiltonians.items()}),
                            st.info["n_electrons"], kpath=ref.kpath, kspacing=0.4)
    assert band_mae_meV(ref, shifted, ref.filling.fermi_level, -6, 6) == pytest.approx(100.0, rel=1e-6)
    assert isinstance(ValidationBandsPlot(tmp_path).every, int) and np.isfinite(ref.filling.fermi_level)
