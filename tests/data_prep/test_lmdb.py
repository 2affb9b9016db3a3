"""Packing real DFT folders into sharded LMDB and reading them back, lazily, in DataLoader workers."""

import json
import os
import pickle
import subprocess
import sys

import lmdb
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from data_prep.deeph_format import read_deeph
from data_prep.graph import edge_vectors_np
from data_prep.inspect_dataset import dataset_stats, verify_dataset
from data_prep.lmdb_dataset import DatasetError, LmdbDataset, LmdbGraphDataset, pack_folders
from data_prep.records import RecordError, decode_record, encode_record, record_blocks

CUTOFF = 5.5


@pytest.fixture(scope="module")
def packed(dft_folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmdb") / "ds"
    return pack_folders(dft_folders, out, cutoff=CUTOFF, workers=2, progress=False)


def test_a_dataset_computed_over_two_releases_of_the_code_keeps_its_recipe(dft_folders, tmp_path):
    """Structures computed with two PySCF versions (the universal-mini data spans 2.14 and 2.15): the same recipe,
    with both versions recorded; another program is another recipe."""
    import shutil

    folders = [shutil.copytree(f, tmp_path / "src" / f.name) for f in dft_folders[:2]]
    info = json.loads((folders[1] / "info.json").read_text())
    version = info["dft"]["code"]
    info["dft"]["code"] = "pyscf 99.0.0"
    (folders[1] / "info.json").write_text(json.dumps(info))
    meta = json.loads((pack_folders(folders, tmp_path / "two", cutoff=CUTOFF, progress=False) / "metadata.json").read_text())
    assert meta["dft_recipe"]["code"] == ", ".join(sorted([version, "pyscf 99.0.0"]))
    assert meta["dft_recipe"]["basis"] == "SZV-MOLOPT-SR-GTH" and meta["dft_recipe"]["xc"] == "pbe"
    info["dft"]["code"] = "cp2k 2024.1"
    (folders[1] / "info.json").write_text(json.dumps(info))
    meta = json.loads((pack_folders(folders, tmp_path / "other", cutoff=CUTOFF, progress=False) / "metadata.json").read_text())
    assert meta["dft_recipe"] is None


def test_layout_and_metadata(packed, dft_folders):
    files = sorted(os.listdir(packed))
    assert files == [".deeph-output.json", "data.0000.lmdb", "data.0001.lmdb", "metadata.json"]
    meta = json.loads((packed / "metadata.json").read_text())
    assert meta["length"] == len(dft_folders) and meta["cutoff"] == CUTOFF
    assert meta["units"] == {"length": "angstrom", "energy": "eV"}
    assert meta["dft_recipe"]["basis"] == "SZV-MOLOPT-SR-GTH" and meta["dft_recipe"]["xc"] == "pbe"
    ds = LmdbDataset(packed)
    assert len(ds) == len(dft_folders)
    for z in meta["elements"]:
        assert str(z) in meta["basis"]
    assert sorted(sum(meta["splits"].values(), [])) == list(range(len(ds)))
    for idx in range(len(ds)):
        rec = ds[idx]
        assert rec["structure_id"] == meta["ids"][idx]
        assert meta["n_matrix_elements"][idx] == rec["h_node"].size + rec["h_edge"].size


def test_round_trip_blocks_are_bit_exact(packed):
    ds = LmdbDataset(packed)
    for idx in range(len(ds)):
        rec = ds[idx]
        src = read_deeph(rec["source"])
        d = np.linalg.norm(edge_vectors_np(src.cell, src.positions, rec["edge_index"], rec["cell_shift"]), axis=1)
        assert d.max() < CUTOFF
        for which, blocks in (("h", src.hamiltonians), ("s", src.overlaps)):
            got = record_blocks(rec, which)
            # every source block within the cutoff is in the record, bit for bit, and nothing else is
            within = {
                k for k in blocks
                if k[3] != k[4] or k[:3] != (0, 0, 0)
                if np.linalg.norm(src.positions[k[4]] + np.array(k[:3]) @ src.cell - src.positions[k[3]]) < CUTOFF
            } | {(0, 0, 0, a, a) for a in range(src.n_atoms)}
            assert set(got) == within
            for k, blk in got.items():
                assert blk.dtype == blocks[k].dtype
                np.testing.assert_array_equal(blk, blocks[k])
        np.testing.assert_array_equal(rec["positions"], src.positions)


def test_reading_only_some_fields_gives_what_the_full_decode_gives(packed):
    from data_prep.records import read_fields

    ds = LmdbDataset(packed)
    names = ("positions", "cell", "pbc", "atomic_numbers", "edge_index", "cell_shift", "h_node")
    for idx in range(len(ds)):
        rec, part = ds[idx], ds.fields(idx, names)
        assert sorted(part) == sorted(names)
        for name in names:
            assert part[name].dtype == rec[name].dtype
            np.testing.assert_array_equal(part[name], rec[name])
    with pytest.raises(RecordError, match="record 0: cannot read fields no_such_field"):
        ds.fields(0, ("no_such_field",))
    with pytest.raises(RecordError, match="here: cannot read fields positions"):
        read_fields(b"\x08" + b"\x00" * 7 + b"not json", ("positions",), "here")


def test_dataloader_workers_and_padded_blocks(packed):
    ds = LmdbGraphDataset(packed, dtype=torch.float64)
    _ = ds[0]  # opens the shard in this process ...
    clone = pickle.loads(pickle.dumps(ds))  # ... which must not travel with the pickle
    assert clone.records._envs == {}
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batch = next(iter(loader))
    assert batch.num_graphs == 2
    slots = ds.basis.slot_table()
    rec = ds.records[0]
    src = record_blocks(rec, "h")
    data = ds[0]
    for (rx, ry, rz, i, j), blk in list(src.items())[:50]:
        si, sj = slots[rec["atomic_numbers"][i], : blk.shape[0]], slots[rec["atomic_numbers"][j], : blk.shape[1]]
        if (rx, ry, rz) == (0, 0, 0) and i == j:
            padded = data.h_node[i]
        else:
            same_shift = np.all(rec["cell_shift"] == (rx, ry, rz), axis=1)
            e = np.flatnonzero((rec["edge_index"][0] == i) & (rec["edge_index"][1] == j) & same_shift)[0]
            padded = data.h_edge[e]
        np.testing.assert_array_equal(padded[np.ix_(si, sj)].numpy(), blk)
        assert padded.abs().sum().item() == pytest.approx(np.abs(blk).sum())  # zero outside the element's orbitals
    # the batched reverse-edge map still points at (j, i, -R)
    ei, rev = batch.edge_index, batch.edge_rev
    assert torch.equal(ei[:, rev], ei.flip(0)) and torch.equal(batch.cell_shift[rev], -batch.cell_shift)


def test_pack_is_all_or_nothing(dft_folders, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "element.dat").write_text("14\n")  # a DeepH folder with everything else missing
    out = tmp_path / "ds"
    with pytest.raises(ValueError, match="bad: missing lat.dat"):
        pack_folders([*dft_folders, bad], out, cutoff=CUTOFF, workers=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no dataset, no temporary folder
    out.mkdir()
    with pytest.raises(FileExistsError):
        pack_folders(dft_folders, out, cutoff=CUTOFF, progress=False)


def test_splits_are_seeded(dft_folders, tmp_path):
    a = pack_folders(dft_folders, tmp_path / "a", cutoff=CUTOFF, split_seed=3, progress=False)
    b = pack_folders(dft_folders, tmp_path / "b", cutoff=CUTOFF, split_seed=3, shards=2, progress=False)
    assert LmdbDataset(a).metadata["splits"] == LmdbDataset(b).metadata["splits"]


def test_verify_and_stats(packed):
    report = verify_dataset(packed)
    assert report["records"] >= 2 and report["max_hermiticity_error_h"] < 1e-8
    stats = dataset_stats(packed)
    assert stats["records"] == report["records"]
    assert stats["h_onsite_eV"]["min"] < 0 < stats["h_hopping_eV"]["max"]


def test_verify_catches_a_non_hermitian_record(packed, tmp_path):
    import shutil

    bad = tmp_path / "ds"
    shutil.copytree(packed, bad)
    env = lmdb.open(str(bad / "data.0000.lmdb"), subdir=False)
    with env.begin(write=True) as txn:
        rec = decode_record(txn.get(b"00000000"))
        rec["h_edge"] = rec["h_edge"].copy()
        rec["h_edge"][0] += 0.5
        txn.put(b"00000000", encode_record(rec))
    env.close()
    with pytest.raises(RecordError, match=r"record 0 .* not Hermitian"):
        verify_dataset(bad)


def test_corrupt_or_truncated_shard(packed, tmp_path):
    import shutil

    bad = tmp_path / "ds"
    shutil.copytree(packed, bad)
    shard = bad / "data.0001.lmdb"
    shard.write_bytes(shard.read_bytes()[:4096])
    with pytest.raises(DatasetError, match="data.0001.lmdb"):
        ds = LmdbDataset(bad)
        for i in range(len(ds)):
            ds[i]
    with pytest.raises(RecordError, match="cannot decode"):
        decode_record(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage", "x")
    with pytest.raises(DatasetError, match="not a packed dataset"):
        LmdbDataset(tmp_path)


def test_cli_pack_verify_stats(dft_folders, tmp_path):
    out = tmp_path / "cli"

    def prep(*args):
        return subprocess.run([sys.executable, "-m", "data_prep.cli", *args], capture_output=True, text=True)

    r = prep("pack", *map(str, dft_folders), "--out", str(out), "--cutoff", str(CUTOFF), "--quiet")
    assert r.returncode == 0, r.stderr
    r = prep("verify", str(out))
    assert r.returncode == 0 and "OK:" in r.stdout
    r = prep("stats", str(out))
    assert r.returncode == 0 and "records" in r.stdout
    r = prep("pack", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "nowhere: no such file or directory" in r.stderr and "Traceback" not in r.stderr


def test_same_dataset_opened_twice_in_one_process(packed):
    a, b = LmdbDataset(packed), LmdbDataset(packed)
    assert a[0]["structure_id"] == b[0]["structure_id"]
    a.close()
    assert b[1]["structure_id"] == LmdbDataset(packed)[1]["structure_id"]


def test_structure_folders_are_found_through_symbolic_links(tmp_path):
    from data_prep.embedded import quickstart_path
    from data_prep.lmdb_dataset import find_structure_folders

    src = sorted(p for p in quickstart_path().iterdir() if p.is_dir())[:2]
    picked = tmp_path / "picked"
    picked.mkdir()
    for folder in src:
        (picked / folder.name).symlink_to(folder, target_is_directory=True)
    (picked / "loop").symlink_to(picked, target_is_directory=True)  # a cycle is walked once
    assert find_structure_folders([picked]) == sorted(f.resolve() for f in src)
