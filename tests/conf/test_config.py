"""Every experiment and every group option composes, resolves and instantiates (where cheap)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from data_prep.basis import BasisTable
from data_prep.gauge import ATOM_GAUGES

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# a multi-element table with s, p, d shells: what a universal model sees
BASIS = BasisTable.from_mapping({1: [0, 0, 1], 8: [0, 0, 1, 1, 2], 14: [0, 0, 1, 1, 2], 26: [0, 0, 0, 1, 1, 2, 2]})


def composed(overrides, tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"paths.output_dir={tmp_path}"])
    OmegaConf.resolve(cfg)  # every interpolation resolves
    return cfg


def test_required_experiments_exist():
    assert {"quickstart", "universal", "universal_mini"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(experiment, tmp_path):
    cfg = composed([f"+experiment={experiment}"], tmp_path)
    assert cfg.task_name == experiment
    assert cfg.trainer.use_distributed_sampler is False  # the batch sampler shards by rank itself
    dm = instantiate(cfg.data)
    assert dm.global_budget > 0
    extra = {}
    if cfg.model.target_gauge in ATOM_GAUGES:  # run() passes the recipe's isolated atoms; here blocks of their shape
        extra["atom_onsite"] = {str(z): (-np.eye(len(BASIS.union_slots(z)))).tolist() for z in BASIS.elements}
    module = instantiate(cfg.model, basis=BASIS.to_dict(), cutoff=7.0, block_stats=None, **extra)  # "auto": run()
    assert module.target_gauge == cfg.model.target_gauge
    assert sum(p.numel() for p in module.net.parameters()) > 0
    for conf in cfg.callbacks.values():
        instantiate(conf)
    if cfg.trainer.accelerator == "cpu":
        instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("group", ["model", "trainer", "logger", "data", "callbacks"])
def test_every_group_option_composes(group, tmp_path):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = composed(["+experiment=quickstart", f"{group}={option}"], tmp_path)
        if group == "model":
            instantiate(cfg.model, basis=BASIS.to_dict(), cutoff=7.0, block_stats=None)  # "auto" is resolved from data by run()
        if group == "logger":
            for name, conf in (cfg.logger or {}).items():
                if name != "tensorboard":  # needs the optional tensorboard package
                    instantiate(conf)
        if group == "trainer" and option in ("cpu", "default"):
            instantiate(cfg.trainer, logger=False)


def test_wandb_is_offline_by_default(tmp_path):
    cfg = composed(["+experiment=quickstart"], tmp_path)
    assert cfg.logger.wandb.offline is True


def test_universal_on_a_cpu_machine_fails_fast_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DEEPH_UNIVERSAL_DATA"}
    env.update(DEEPH_DATA_DIR=str(tmp_path / "data"), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "train.py", "+experiment=universal", f"hydra.run.dir={tmp_path / 'run'}", "logger=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dataset not found" in proc.stderr and "universal.lmdb" in proc.stderr
    assert "no CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
def test_model_presets_are_the_training_configs(name, tmp_path):
    """models.build_model(preset=name) builds the network that training composes from conf/model/<name>.yaml."""
    from deeph_lightning.models import PRESETS
    from deeph_lightning.models.presets import preset

    net = OmegaConf.to_container(composed([f"model={name}"], tmp_path).model.net)
    assert preset(name) == net
    assert PRESETS[name] == {k: v for k, v in net.items() if k != "_target_"}
