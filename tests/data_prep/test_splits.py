"""Generalisation splits of a packed dataset: held-out chemical systems never reach training; complicated
structures are exactly the complicated test group; the DataModule and deeph-eval read them by name."""

import json
import shutil

import pytest

from data_prep.embedded import quickstart_path
from data_prep.lmdb_dataset import DatasetError, LmdbDataset, pack_folders
from data_prep.splits import chemical_system


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    folders = sorted(p for p in quickstart_path().iterdir() if p.is_dir())[::2]
    complicated = set()
    for k, f in enumerate(folders):
        dst = src / f.name
        shutil.copytree(f, dst)
        if k % 5 == 0:  # mark some as complicated substitutions with a dopant outside their system
            info = json.loads((dst / "info.json").read_text())
            symbols = sorted({"6": "C", "14": "Si"}[z] for z in (dst / "element.dat").read_text().split())
            info["catalogue"] = {"group": "complicated", "kind": "substitution", "elements": symbols + ["Ge"],
                                 "defect": {"by": "Ge"}}
            (dst / "info.json").write_text(json.dumps(info))
            complicated.add(f.name)
    out = pack_folders([src], tmp_path_factory.mktemp("lmdb") / "ds", cutoff=6.0, progress=False)
    return LmdbDataset(out), complicated, src


def test_composition_split_holds_out_whole_systems(packed):
    ds, _, src = packed
    ids = ds.metadata["ids"]
    systems = [chemical_system(src / sid) for sid in ids]
    assert "C-Si" in systems and "Si" in systems  # substitutions count as their parent system (no Ge)
    split = {name: ds.split(name, "composition") for name in ("train", "val", "test")}
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(len(ids)))
    assert split["test"] and split["train"]
    held_out = {systems[i] for i in split["test"]}
    assert not held_out & {systems[i] for i in split["train"] + split["val"]}


def test_complicated_split_is_the_complicated_group(packed):
    ds, complicated, _ = packed
    ids = ds.metadata["ids"]
    sets = ds.split("test", "complicated"), ds.split("train", "complicated"), ds.split("val", "complicated")
    assert {ids[i] for i in sets[0]} == complicated
    assert not set(sets[0]) & (set(sets[1]) | set(sets[2]))
    with pytest.raises(DatasetError, match="no split set"):
        ds.split("test", "nonsense")


def test_composition_split_never_holds_out_an_element_entirely():
    """Held-out compositions, not held-out elements: every element of a val/test system stays in training."""
    from data_prep.splits import composition_split

    systems = ["Li", "Li", "H-Li", "Cs", "Cs-Te", "Te", "H", "Ba-O", "Ba-O", "O", "Ba-Ti-O", "Ti", "Ti-O", "Cs"]
    for seed in range(20):
        split = composition_split(systems, seed, (0.6, 0.2, 0.2))
        assert sorted(sum(split.values(), [])) == list(range(len(systems)))
        trained = {e for i in split["train"] for e in systems[i].split("-")}
        held = [systems[i] for i in split["val"] + split["test"]]
        assert held and all(set(s.split("-")) <= trained for s in held), (seed, held)
        assert not set(held) & {systems[i] for i in split["train"]}


def test_composition_split_mostly_stable_as_the_data_grows():
    """Adding systems (the dataset grows chunk by chunk) keeps most held-out systems held out, so successive
    model versions can be compared on them; a fresh permutation of the systems would keep ~a fifth."""
    from data_prep.splits import composition_split

    elements = ["H", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca", "Ti", "Fe", "Zn"]
    pairs = [f"{a}-{b}" for k, a in enumerate(elements) for b in elements[k + 1:]]
    systems = elements * 2 + pairs[:100]
    grown = systems + pairs[100:125]

    def held(sys_list):
        split = composition_split(sys_list, 0, (0.8, 0.1, 0.1))
        return {sys_list[i] for i in split["val"] + split["test"]}

    before, after = held(systems), held(grown)
    assert len(before) >= 15
    assert len(before & after) >= 0.8 * len(before), (sorted(before), sorted(after))
