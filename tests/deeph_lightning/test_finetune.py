"""Fine-tuning the shipped universal-mini model (``finetune_from``) on a few of its own DFT structures packed by a
user: the run starts from the model's weights and keeps its network, elements, cutoff and gauge; data that does
not fit the model is refused before anything trains."""

from __future__ import annotations

import pytest
import torch

from data_prep.basis import CHEMICAL_SYMBOLS, BasisTable, element_symbol
from data_prep.embedded import dataset_path
from deeph_lightning.finetune import data_problems, finetune_start, group_donor
from deeph_lightning.models.checkpoint import read_checkpoint
from deeph_lightning.preflight import SetupError
from deeph_lightning.training import run
from lightning_helpers import compose, train_lmdb  # noqa: F401 (fixture)

# two-atom structures of the shipped set: sp semiconductors and a CsCl-type alloy (train, validation and test)
NAMES = ("AlAs_zincblende_s0_00090", "GaP_honeycomb_2d_s0_00160", "BeS_zincblende_s0_00102", "CaS_rocksalt_s0_00303",
         "CuZn_cscl_alloy_s0_00187", "BP_zincblende_s0_00024")


@pytest.fixture(scope="module")
def user_pack(tmp_path_factory):
    """Six universal-mini structures packed at the model's 9 Å, as a user packs their own DFT folders."""
    from data_prep.lmdb_dataset import pack_folders

    root = dataset_path("universal-mini")
    out = tmp_path_factory.mktemp("finetune") / "mine.lmdb"
    return pack_folders([str(root / n) for n in NAMES], out, cutoff=9.0, split_seed=0,
                        split_fractions=(0.5, 0.25, 0.25), progress=False)


def overrides(pack, **kw) -> list[str]:
    out = ["+experiment=universal_mini", f"data.path={pack}", "data.pack_from=null", "data.split_set=random",
           "logger=csv", "trainer.enable_progress_bar=false", "callbacks.val_bands=null", "trainer.max_steps=2",
           "trainer.check_val_every_n_epoch=1", "test_after_training=false"]
    return out + [f"{k}={v}" for k, v in kw.items()]


def test_finetuning_starts_from_the_shipped_weights_and_keeps_the_model(user_pack, tmp_path):
    shipped = read_checkpoint("universal-mini")
    # LR 0: the weights must come out exactly as they went in, so any change would be the loading's
    frozen = run(compose(overrides(user_pack, finetune_from="universal-mini", **{"model.optimizer.lr": 0}),
                         tmp_path / "finetuned"))
    scratch = run(compose(overrides(user_pack, **{"model.optimizer.lr": 0}), tmp_path / "scratch"))
    saved = torch.load(frozen["last_checkpoint"], weights_only=True)
    for key, value in shipped["state_dict"].items():
        if key.startswith("ema.module."):
            assert torch.equal(saved["state_dict"][key], value), key
            assert torch.equal(saved["state_dict"]["net." + key[len("ema.module."):]], value), key
    meta, old = saved["deeph"], shipped["deeph"]
    for fact in ("net", "basis", "cutoff", "target_gauge", "atom_onsite", "huckel_k"):
        assert meta[fact] == old[fact], fact
    assert meta["finetuned_from"]["source"] == "universal-mini"
    assert meta["finetuned_from"]["global_step"] == old["global_step"]
    from deeph_lightning.ship_model import card

    assert f"| fine-tuned from | universal-mini (trained {old['global_step']} steps) |" in card(
        "mine", "AlAs", meta, {}, {"dataset": "mine", "id": "x", "mae_meV": 0.0})
    # the bonds it has seen: the universal-mini training set's and the new training split's
    assert set(old["training_bonds"]) <= set(meta["training_bonds"])
    assert all(meta["training_bonds"][k][0] >= n for k, (n, *_) in old["training_bonds"].items())
    # validated with the trained weights (11 vs 27 meV of a fresh network with the same output statistics)
    assert frozen["val"]["val/mae_meV"] < 0.5 * scratch["val"]["val/mae_meV"]


def test_data_that_does_not_fit_the_model_is_refused_before_training(train_lmdb, user_pack, tmp_path):
    # the quickstart pack: C and Si, which universal-mini knows, but graphs cut at 6.5 Å instead of the model's 9 Å
    with pytest.raises(SetupError, match=r"cannot fine-tune universal-mini: .*quickstart.lmdb is packed with cutoff "
                                         r"6.5 Å, universal-mini uses 9 Å: pack it with `deeph-prep pack \.\.\. --cutoff 9`"):
        run(compose(overrides(train_lmdb, finetune_from="universal-mini", **{"data.cutoff": "null"}), tmp_path / "a"))
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(SetupError, match=r"finetune_from=.*notes.ckpt: .*not a deeph-lightning checkpoint"):
        run(compose(overrides(user_pack, finetune_from=tmp_path / "notes.ckpt"), tmp_path / "b"))
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "b" / "checkpoints").exists()


def test_elements_and_bases_the_model_does_not_have_are_named():
    start = finetune_start("universal-mini")
    model = start.basis
    gold = BasisTable.from_mapping({**{z: model.shells_of(z) for z in (6, 14)}, 79: (0, 0, 1, 2)})
    big_gold = BasisTable.from_mapping({**{z: model.shells_of(z) for z in (6, 14)}, 79: (0, 0, 0, 1, 2)})
    other_si = BasisTable.from_mapping({6: model.shells_of(6), 14: (0, 0, 1, 2)})
    assert data_problems(start, model, 9.0, "data") == []
    assert data_problems(start, gold, 9.0, "mine.lmdb") == []  # a new element whose orbitals fit is added
    (problem,) = data_problems(start, big_gold, 9.0, "mine.lmdb")
    assert problem == ("mine.lmdb has element(s) Au whose orbitals do not fit universal-mini's readout (shells "
                       "(0, 0, 0, 1, 2); the model has slots for (0, 0, 1, 2)): train a model with this basis from "
                       "scratch")
    (problem,) = data_problems(start, other_si, 9.0, "mine.lmdb")
    assert problem == "mine.lmdb has another DFT basis for Si than universal-mini (shells (0, 0, 1, 2) vs (0, 1))"


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A model that knows Al, As, B, P, Be, Co, Cu, Zn and Ga (two steps on five structures), to add elements to;
    Co gives it the readout of universal-mini (shells s, s, p, d)."""
    from data_prep.lmdb_dataset import pack_folders

    tmp = tmp_path_factory.mktemp("base")
    names = ("AlAs_zincblende_s0_00090", "BP_zincblende_s0_00024", "BeCo_cscl_alloy_s0_00018",
             "CuZn_cscl_alloy_s0_00187", "GaP_honeycomb_2d_s0_00160")
    pack = pack_folders([str(dataset_path("universal-mini") / n) for n in names], tmp / "base.lmdb", cutoff=9.0,
                        split_seed=0, split_fractions=(0.8, 0.2, 0.0), progress=False)
    return run(compose(overrides(pack), tmp / "run"))["last_checkpoint"]


def test_finetuning_adds_the_elements_the_model_lacks_and_keeps_what_it_knew(base_model, user_pack, tmp_path):
    from deeph_lightning.ship_model import check_mae, fine_tuned_from

    # the user's training split (BeS, CaS) brings S and Ca; LR 0 keeps the weights as they were
    tuned = run(compose(overrides(user_pack, finetune_from=base_model, **{"model.optimizer.lr": 0}), tmp_path / "t"))
    base = torch.load(base_model, weights_only=True)
    saved = torch.load(tuned["last_checkpoint"], weights_only=True)
    old, meta = base["deeph"], saved["deeph"]
    new = {"16", "20"}
    assert set(meta["basis"]) == set(old["basis"]) | new
    assert all(meta["basis"][z] == shells for z, shells in old["basis"].items())
    assert meta["finetuned_from"]["added_elements"] == ["S", "Ca"]
    # Ca starts as Be, the element of its group the model knows; the model knows no element of S's group
    assert meta["finetuned_from"]["element_init"] == {"Ca": "Be"}
    assert fine_tuned_from(meta["finetuned_from"]).endswith("(trained 2 steps), adding S, Ca (Ca as Be)")
    for key in ("node_embedding.weight", "edge_embedding.z_src.weight", "edge_embedding.z_dst.weight"):
        was, now = base["state_dict"]["ema.module." + key], saved["state_dict"]["ema.module." + key]
        assert torch.equal(now[20], was[4]) and torch.equal(now[16], was[16]), key
        assert torch.equal(now[:16], was[:16]) and torch.equal(now[21:], was[21:]), key
    # the model's own tables are kept; the new elements get theirs from the training split and the data's recipe
    assert all(meta["atom_onsite"][z] == v for z, v in old["atom_onsite"].items()) and new <= set(meta["atom_onsite"])
    stats, old_stats = meta["net"]["block_stats"], old["net"]["block_stats"]
    for table, entries in old_stats.items():
        assert all(stats[table][k] == v for k, v in entries.items()), table
    assert new <= set(stats["onsite_shift"]) and {"4-16", "16-20", "16-16"} <= set(stats["hopping_decay"])
    # S with the model's elements: bonded by no data, from the combining rule (S-S and the element's own)
    known = [z for z in map(int, old["basis"]) if f"{z}-{z}" in old_stats["hopping_scale"]]
    assert known and all(f"{min(z, 16)}-{max(z, 16)}" in stats["hopping_scale"] for z in known)
    # what it predicts for a structure of the elements it knew does not move; it now reads the new ones
    assert check_mae(tuned["last_checkpoint"], "universal-mini", "AlAs_zincblende_s0_00090") == check_mae(
        base_model, "universal-mini", "AlAs_zincblende_s0_00090")
    with pytest.raises(RuntimeError, match=r"element\(s\) S, Ca unknown to the model"):
        check_mae(base_model, "universal-mini", "CaS_rocksalt_s0_00303")
    assert check_mae(tuned["last_checkpoint"], "universal-mini", "CaS_rocksalt_s0_00303") < 1e4
    # untrained: the new rows stay as they were
    plain = run(compose(overrides(user_pack, finetune_from=base_model, finetune_element_init="untrained",
                                  **{"model.optimizer.lr": 0}), tmp_path / "u"))
    saved = torch.load(plain["last_checkpoint"], weights_only=True)
    assert saved["deeph"]["finetuned_from"]["element_init"] == {}
    assert torch.equal(saved["state_dict"]["ema.module.node_embedding.weight"],
                       base["state_dict"]["ema.module.node_embedding.weight"])


def test_the_group_donor_is_the_nearest_known_element_of_the_group():
    known = finetune_start("universal-mini").basis.elements
    donors = {sym: group_donor(CHEMICAL_SYMBOLS.index(sym), known) for sym in ("Zr", "Hf", "Mo", "Ag", "Xe")}
    assert {sym: element_symbol(z) if z else None for sym, z in donors.items()} == {
        "Zr": "Ti", "Hf": "Ti", "Mo": "Cr", "Ag": "Cu", "Xe": None}


def test_a_new_element_outside_the_training_split_is_refused(base_model, user_pack, tmp_path):
    # half the training split: BeS or CaS, so Ca or Be is left with nothing to learn it from
    with pytest.raises(SetupError, match=r"mine.lmdb: element\(s\) (Be|Ca) that .*base.* does not know are in no "
                                         r"structure of the training split"):
        run(compose(overrides(user_pack, finetune_from=base_model, **{"data.train_fraction": 0.5}), tmp_path / "a"))
    assert not (tmp_path / "a" / "checkpoints").exists()
