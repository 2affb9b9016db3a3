"""The checkpoint format is data: a file naming anything but our networks and plain values is refused
before anything from it is imported, called or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deeph_lightning.models.checkpoint import NETWORKS, CheckpointError, build_net, describe, load_model

from model_structures import BASIS, CUTOFF, TINY

DEEPH2 = "deeph_lightning.models.deeph2.DeepH2"
REPO = Path(__file__).resolve().parents[2]


def write_checkpoint(path: Path, net: dict) -> Path:
    """A checkpoint as training writes it, for a tiny DeepH-2 (its weights), describing the network ``net``."""
    torch.manual_seed(0)
    model = build_net({"_target_": DEEPH2, **TINY}, BASIS, CUTOFF)
    meta = describe(net, BASIS, CUTOFF, has_ema=False, dtype=torch.float32, config=None, dft_recipe=None,
                    wandb_run_id=None, global_step=3)
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "deeph": meta}, path)
    return path


def hostile_nets(victim: Path) -> dict[str, dict]:
    """Network configs that, passed to hydra.utils.instantiate, write into or next to ``victim``."""
    return {
        "savetxt": {"_target_": "numpy.savetxt", "fname": str(victim / "savetxt.txt"), "X": [1.0, 2.0]},
        "open": {"_target_": DEEPH2, **TINY,
                 "block_stats": {"_target_": "builtins.open", "file": str(victim / "open.txt"), "mode": "w"}},
        "copyfile": {"_target_": DEEPH2, **TINY,
                     "ffn_channels": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(victim / "copy.py")}},
        "mkdir": {"_target_": DEEPH2, **{**TINY, "layers": [{"_target_": "pathlib.Path.mkdir",
                                                             "self": {"_target_": "pathlib.Path",
                                                                      "_args_": [str(victim / "made")]}}]}},
        "convert": {"_target_": DEEPH2, **TINY, "_convert_": "all"},
    }


def test_honest_checkpoint_round_trips(tmp_path):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", {"_target_": DEEPH2, **TINY})
    loaded = load_model(ckpt)
    assert type(loaded.model).__name__ == "DeepH2" and loaded.basis == BASIS and loaded.cutoff == CUTOFF
    torch.manual_seed(0)
    reference = build_net({"_target_": DEEPH2, **TINY}, BASIS, CUTOFF)
    for k, v in reference.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    assert set(NETWORKS) == {DEEPH2, "deeph_lightning.models.deeph_e3.DeepHE3"}


@pytest.mark.parametrize("case", ["savetxt", "open", "copyfile", "mkdir", "convert"])
def test_crafted_network_config_is_refused(tmp_path, case):
    victim = tmp_path / "victim"
    victim.mkdir()
    ckpt = write_checkpoint(tmp_path / f"{case}.ckpt", hostile_nets(victim)[case])
    with pytest.raises(CheckpointError, match=f"{case}.ckpt: cannot rebuild the network") as err:
        load_model(ckpt)
    assert "\n" not in str(err.value)
    assert list(victim.iterdir()) == []


def test_other_foreign_metadata_is_refused(tmp_path):
    for field, value, message in (("dtype", "save", "dtype"), ("units", {"length": "bohr", "energy": "Ha"}, "units"),
                                  ("orbital_order", "e3nn", "orbital order")):
        ckpt = write_checkpoint(tmp_path / f"{field}.ckpt", {"_target_": DEEPH2, **TINY})
        raw = torch.load(ckpt, weights_only=True)
        raw["deeph"][field] = value
        torch.save(raw, ckpt)
        with pytest.raises(CheckpointError, match=message):
            load_model(ckpt)
    with pytest.raises(ValueError, match="takes no argument"):
        build_net({"_target_": DEEPH2, **TINY, "verbose": True}, BASIS, CUTOFF)


def test_deeph_eval_predict_refuses_a_crafted_checkpoint(tmp_path):
    """End to end: exit 2, one line naming the checkpoint, no output folder and nothing written."""
    victim = tmp_path / "victim"
    victim.mkdir()
    nets = hostile_nets(victim)
    nested = {"_target_": DEEPH2, **TINY, "block_stats": nets["open"]["block_stats"],
              "ffn_channels": nets["copyfile"]["ffn_channels"], "layers": nets["mkdir"]["layers"]}
    structure = tmp_path / "POSCAR"
    structure.write_text("Si\n1.0\n0 2.715 2.715\n2.715 0 2.715\n2.715 2.715 0\nSi\n2\nCartesian\n"
                         "0 0 0\n1.3575 1.3575 1.3575\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name, net in (("top", nets["savetxt"]), ("nested", nested)):
        ckpt = write_checkpoint(tmp_path / f"{name}.ckpt", net)
        out = tmp_path / f"pred_{name}"
        proc = subprocess.run([sys.executable, "-m", "deeph_eval.cli", "predict", "--ckpt", str(ckpt),
                               "--structure", str(structure), "--out", str(out)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        refusal = "not one of our networks" if name == "top" else "not a network hyper-parameter"
        assert len(lines) == 1 and str(ckpt) in lines[0] and refusal in lines[0], proc.stderr
        assert not out.exists() and list(victim.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["POSCAR", "nested.ckpt", "top.ckpt", "victim"]


def test_checkpoint_written_by_the_previous_module_still_loads():
    """data/deeph2_tiny_format1.ckpt: a tiny DeepH-2 (Si s+p, EMA) saved by the LightningModule before the format
    moved to models/checkpoint.py (network, basis and cutoff also in hyper_parameters); ..._si_blocks.pt: what
    that code's load_model predicted for bulk Si."""
    from ase.build import bulk
    from torch_geometric.data import Batch

    from data_prep.torch_data import structure_to_data

    data = Path(__file__).parent / "data"
    loaded = load_model(data / "deeph2_tiny_format1.ckpt")
    assert loaded.meta["has_ema"] and loaded.dft_recipe["basis"] == "gth-szv" and loaded.cutoff == 3.6
    si = bulk("Si", "diamond", a=5.43)
    batch = Batch.from_data_list([structure_to_data(si.numbers, si.positions, si.cell[:], si.pbc, loaded.cutoff,
                                                    loaded.basis)])
    with torch.no_grad():
        out = loaded.model(batch)
    expected = torch.load(data / "deeph2_tiny_format1_si_blocks.pt", weights_only=True)
    # float32 weights, blocks of a few eV: entries that vanish by symmetry (Si s-p on-site) come out as rounding
    # noise of ~3e-7 eV that depends on the summation order of the BLAS in use; 1e-6 eV is float32 resolution here
    torch.testing.assert_close(out["h_node"], expected["h_node"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out["h_edge"], expected["h_edge"], rtol=1e-6, atol=1e-6)
