"""Hostile and careless input, replayed on real data (the shipped quickstart DeepH folders, a real packed LMDB,
a real tiny checkpoint): every case ends in exit code 2 with one line naming the culprit, and nothing we did not
write is deleted, nothing is half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_prep import cli as prep_cli
from data_prep.embedded import quickstart_path
from deeph_eval import cli as eval_cli

REPO = Path(__file__).resolve().parents[1]
NAMES = ("Si2_diamond_s11_00013", "C2_diamond_s11_00000", "CSi_zincblende_s11_00004", "CSi_zincblende_s11_00006")
CUTOFF = "7.0"  # the quickstart folders hold blocks to 7 Å (info.json radius)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: 'nothing changed' is equality of two snapshots."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str, *names: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]  # tqdm bars are not messages
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def prep(capsys, *args) -> tuple[int, str, str]:
    code = prep_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def evaluate(capsys, *args) -> tuple[int, str, str]:
    code = eval_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A user's folder of four real DFT results (copied from the quickstart data)."""
    root = tmp_path_factory.mktemp("hostile") / "mydft"
    root.mkdir()
    for name in NAMES:
        shutil.copytree(quickstart_path() / name, root / name)
    return root


@pytest.fixture(scope="module")
def packed(sources, tmp_path_factory) -> Path:
    from data_prep.lmdb_dataset import pack_folders

    return pack_folders([sources], tmp_path_factory.mktemp("packed") / "ds", cutoff=float(CUTOFF), workers=2,
                        split_fractions=(0.5, 0.25, 0.25), progress=False)


@pytest.fixture
def folder(sources, tmp_path) -> Path:
    """A private copy of one DeepH folder to break."""
    return Path(shutil.copytree(sources / NAMES[2], tmp_path / NAMES[2]))


# ---------------------------------------------------------------------------------------------------
# data loss: --overwrite deletes only what we wrote


def test_pack_out_is_an_input_or_its_parent(sources, capsys):
    before = snapshot(sources.parent)
    for out in (sources, sources.parent, sources / NAMES[0]):
        code, _, err = prep(capsys, "pack", sources, "--out", out, "--overwrite", "--cutoff", CUTOFF, "--quiet")
        assert code == 2
        assert "choose another --out" in one_error_line(err, str(out))
    code, _, err = prep(capsys, "pack", sources / NAMES[0], "--out", sources, "--overwrite", "--quiet")
    assert code == 2 and "contains the input" in one_error_line(err, str(sources))
    assert snapshot(sources.parent) == before


def test_overwrite_replaces_only_our_own_output(sources, tmp_path, capsys):
    out = tmp_path / "ds"
    assert prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet")[0] == 0
    manifest = json.loads((out / ".deeph-output.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir() if p.name != ".deeph-output.json")
    code, _, err = prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet")
    assert code == 2 and "--overwrite" in one_error_line(err, str(out))
    assert prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet", "--overwrite")[0] == 0

    (out / "notes.txt").write_text("my notes")  # a user's file inside our output
    before = snapshot(out)
    code, _, err = prep(capsys, "pack", sources, "--out", out, "--cutoff", CUTOFF, "--quiet", "--overwrite")
    assert code == 2 and "notes.txt" in one_error_line(err, str(out))
    assert snapshot(out) == before

    theirs = tmp_path / "theirs"  # a folder we never wrote
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("x")
    code, _, err = prep(capsys, "pack", sources, "--out", theirs, "--cutoff", CUTOFF, "--quiet", "--overwrite")
    assert code == 2 and "not written by deeph-lightning" in one_error_line(err, str(theirs))
    assert (theirs / "thesis.tex").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "theirs"]  # no temporary folder left


def test_unwritable_out_fails_before_any_work(sources, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = prep(capsys, "pack", sources, "--out", blocker / "ds", "--cutoff", CUTOFF)
    assert code == 2 and "not a directory" in one_error_line(err, str(blocker))
    assert "structure/s" not in err  # failed before the progress bar started


# ---------------------------------------------------------------------------------------------------
# LMDB integrity: flipped bytes, truncated shards, impossible records


def _copy(packed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(packed, tmp_path / "ds"))


def _flip_inside_record(ds_dir: Path, idx: int, offsets) -> Path:
    """Flip bytes of record ``idx`` where they lie in its shard file (the LMDB page structure stays intact)."""
    from data_prep.lmdb_dataset import LmdbDataset

    ds = LmdbDataset(ds_dir)
    raw = bytes(ds.raw(idx))
    shard = ds_dir / ds.metadata["shards"][ds.locate(idx)[0]]
    data = bytearray(shard.read_bytes())
    start = data.find(raw)
    assert start >= 0
    for off in offsets:
        data[start + (off % len(raw))] ^= 0x5A
    shard.write_bytes(bytes(data))
    return shard


@pytest.mark.parametrize("where", ["header", "blocks", "cell_shift", "last_byte"])
def test_verify_catches_any_flipped_byte(packed, tmp_path, capsys, where):
    from data_prep.lmdb_dataset import LmdbDataset

    bad = _copy(packed, tmp_path)
    raw = bytes(LmdbDataset(bad).raw(1))
    header_len = int.from_bytes(raw[:8], "little")
    if where == "cell_shift":  # 16 flipped bytes that change one edge's cell shift (still a valid record)
        header = json.loads(raw[8 : 8 + header_len])
        first = 8 + header_len + header["cell_shift"]["data_offsets"][0]
        offsets = range(first, first + 16)
    else:
        offsets = {"header": [20], "blocks": [len(raw) // 2], "last_byte": [len(raw) - 1]}[where]
    shard = _flip_inside_record(bad, 1, offsets)
    for command in ("verify", "stats"):
        code, out, err = prep(capsys, command, bad)
        assert code == 2 and "OK" not in out
        one_error_line(err, shard.name, "record")


def test_truncated_shard_is_an_error_not_sigbus(packed, tmp_path):
    bad = _copy(packed, tmp_path)
    shard = bad / "data.0001.lmdb"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    for command in ("verify", "stats"):  # subprocesses: a SIGBUS would kill pytest itself
        r = subprocess.run([sys.executable, "-m", "data_prep.cli", command, str(bad)], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "truncated" in one_error_line(r.stderr, "data.0001.lmdb")


def test_old_records_without_checksums_still_read(packed, tmp_path, capsys):
    """A dataset packed before checksums existed: readable, and verify says its records carry none."""
    import lmdb
    import safetensors.numpy as stn

    from data_prep.records import STRING_FIELDS, decode_record

    old = _copy(packed, tmp_path)
    meta = json.loads((old / "metadata.json").read_text())
    del meta["record_checksums"]
    (old / "metadata.json").write_text(json.dumps(meta))
    for shard in meta["shards"]:
        env = lmdb.open(str(old / shard), subdir=False, lock=False)
        with env.begin(write=True) as txn:
            for key, value in list(txn.cursor()):
                if key.startswith(b"__"):
                    continue
                rec = decode_record(value)
                arrays = {k: v for k, v in rec.items() if k not in STRING_FIELDS}
                txn.put(key, stn.save(arrays, metadata={**{k: rec[k] for k in STRING_FIELDS}, "schema_version": "1"}))
        env.close()
    code, out, _ = prep(capsys, "verify", old)
    assert code == 0
    assert "absent on 4 of 4 records" in out


def test_impossible_records_are_named(packed, tmp_path, capsys):
    """Records that decode (valid checksum) but cannot be right: element 119, an edge to a missing atom."""
    import lmdb

    from data_prep.records import decode_record, encode_record

    for field, value in (("atomic_numbers", 119), ("edge_index", 99)):
        bad = _copy(packed, tmp_path / field)
        env = lmdb.open(str(bad / "data.0000.lmdb"), subdir=False, lock=False)
        with env.begin(write=True) as txn:
            rec = decode_record(txn.get(b"00000000"))
            rec[field] = rec[field].copy()
            rec[field].flat[0] = value
            txn.put(b"00000000", encode_record(rec))
        env.close()
        for command in ("verify", "stats"):
            code, _, err = prep(capsys, command, bad)
            assert code == 2
            one_error_line(err, "data.0000.lmdb record 0", "119" if value == 119 else "edge_index")


def test_metadata_without_basis(packed, tmp_path, capsys):
    bad = _copy(packed, tmp_path)
    meta = json.loads((bad / "metadata.json").read_text())
    del meta["basis"]
    (bad / "metadata.json").write_text(json.dumps(meta))
    code, _, err = prep(capsys, "stats", bad)
    assert code == 2 and "'basis'" in one_error_line(err, "metadata.json")


# ---------------------------------------------------------------------------------------------------
# DeepH folders and geometry: exit 2 naming the file, before any neighbour search, nothing left behind


def _set_lattice(d: Path, rows):
    np.savetxt(d / "lat.dat", np.asarray(rows, dtype=float).T)


def _set_position(d: Path, atom: int, xyz):
    pos = np.loadtxt(d / "site_positions.dat")
    pos[:, atom] = xyz
    np.savetxt(d / "site_positions.dat", pos)


def _edit_info(d: Path, **changes):
    info = json.loads((d / "info.json").read_text())
    info.update(changes)
    (d / "info.json").write_text(json.dumps(info))


def _h5(d: Path, fn):
    import h5py

    with h5py.File(d / "hamiltonians.h5", "r+") as f:
        fn(f)


def _first_key(f):
    return sorted(f.keys())[0]


def _replace_block(f, value):
    key = _first_key(f)
    del f[key]
    f[key] = value


def _corrupt_h5_interior(d: Path):
    data = bytearray((d / "hamiltonians.h5").read_bytes())
    data[4096:] = bytes(len(data) - 4096)  # the superblock survives, the object headers and data do not
    (d / "hamiltonians.h5").write_bytes(bytes(data))


def _lattice(d: Path) -> np.ndarray:
    return np.loadtxt(d / "lat.dat").T


FOLDER_CASES = {
    "nan-lattice": (lambda d: _set_lattice(d, np.where(np.eye(3) > 0, np.nan, _lattice(d))), "lat.dat", "NaN"),
    "inf-position": (lambda d: _set_position(d, 0, [np.inf, 0, 0]), "site_positions.dat", "atom 1"),
    "degenerate-lattice": (lambda d: _set_lattice(d, [_lattice(d)[0], _lattice(d)[0], _lattice(d)[2]]), "lat.dat",
                           "degenerate"),
    "nearly-singular-lattice": (lambda d: _set_lattice(d, [_lattice(d)[0], _lattice(d)[1],
                                                           _lattice(d)[0] + _lattice(d)[1] + 1e-6]),
                                "lat.dat", "lattice"),
    "overlapping-atoms": (lambda d: _set_position(d, 1, np.loadtxt(d / "site_positions.dat")[:, 0] + 0.01),
                          NAMES[2], "overlapping"),
    "h5-corrupt-interior": (_corrupt_h5_interior, "hamiltonians.h5", "HDF5"),
    "h5-group": (lambda d: _h5(d, lambda f: f.create_group("[0, 0, 9, 1, 1]")), "hamiltonians.h5", "group"),
    "h5-strings": (lambda d: _h5(d, lambda f: _replace_block(f, np.array([["a", "b"]], dtype="S1"))),
                   "hamiltonians.h5", "floating point"),
    "h5-int-blocks": (lambda d: _h5(d, lambda f: _replace_block(f, np.ones((4, 4), dtype=np.int64))),
                      "hamiltonians.h5", "int64"),
    "element-symbols": (lambda d: (d / "element.dat").write_text("C\nSi\n"), "element.dat", "'C'"),
    "element-119": (lambda d: (d / "element.dat").write_text("6\n119\n"), "element.dat", "119"),
    "info-list": (lambda d: (d / "info.json").write_text("[1, 2]"), "info.json", "JSON object"),
    "fermi-text": (lambda d: _edit_info(d, fermi_level="abc"), "info.json", "fermi_level"),
    "pbc-length-2": (lambda d: _edit_info(d, pbc=[True, True]), "info.json", "pbc"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_bad_deeph_folder_fails_pack_naming_the_file(folder, tmp_path, capsys, case):
    corrupt, culprit, problem = FOLDER_CASES[case]
    corrupt(folder)
    t0 = time.perf_counter()
    code, _, err = prep(capsys, "pack", folder, "--out", tmp_path / "ds", "--cutoff", CUTOFF, "--quiet")
    assert code == 2
    line = one_error_line(err, culprit, problem)
    assert str(folder) in line or culprit == NAMES[2]
    assert time.perf_counter() - t0 < 20  # no neighbour search over a near-singular lattice
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no dataset, no temporary folder


def test_cutoff_nan_and_cutoff_beyond_stored_blocks(folder, tmp_path, capsys):
    code, _, err = prep(capsys, "pack", folder, "--out", tmp_path / "ds", "--cutoff", "nan", "--quiet")
    assert code == 2 and "cutoff" in one_error_line(err, "nan")
    code, _, err = prep(capsys, "pack", folder, "--out", tmp_path / "ds", "--quiet")  # default 7.5 Å > 7 Å stored
    assert code == 2
    one_error_line(err, str(folder), "info.json radius 7 Å", "--cutoff 7")


def test_dft_refuses_a_degenerate_lattice_before_computing(tmp_path, capsys):
    from ase.build import bulk
    from ase.io import write

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.cell[2] = atoms.cell[0] + atoms.cell[1] + 1e-7
    write(tmp_path / "flat.xyz", atoms, format="extxyz")
    code, out, _ = prep(capsys, "dft", tmp_path / "flat.xyz", "--out", tmp_path / "dft")
    assert code == 1  # a batch records each failed structure and goes on
    assert "FAILED flat:" in out and "lattice" in out
    assert not (tmp_path / "dft" / "flat").exists()


# ---------------------------------------------------------------------------------------------------
# with a real (tiny, two-step) checkpoint: predict, bands, deeph-eval test, train.py


def _train(dataset: Path, run_dir: Path, **kw) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "deeph_lightning"))
    from lightning_helpers import TINY_NET, compose  # the training tests' configs

    from deeph_lightning.training import run

    overrides = ["+experiment=quickstart", f"data.path={dataset}", "data.pack_from=null", "data.global_budget=200000",
                 f"data.cutoff={CUTOFF}", "logger=csv", "callbacks.val_bands=null", "trainer.enable_progress_bar=false",
                 "trainer.max_steps=2", "trainer.max_epochs=100", "test_after_training=false", *TINY_NET]
    overrides += [f"{k}={v}" for k, v in kw.items()]
    return run(compose(overrides, run_dir))


@pytest.fixture(scope="module")
def checkpoint(packed, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "run"
    _train(packed, run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


def test_predict_never_deletes_inputs_or_foreign_files(checkpoint, sources, tmp_path, capsys):
    from ase.io import write

    from data_prep.deeph_format import read_deeph
    from deeph_eval.inference import to_atoms

    work = tmp_path / "work"
    work.mkdir()
    write(work / "some.cif", to_atoms(read_deeph(sources / NAMES[2])))
    (work / "notes.txt").write_text("do not lose me")
    before = snapshot(work)
    for out in (work, work / "some.cif"):
        code, _, err = evaluate(capsys, "predict", "--ckpt", checkpoint, "--structure", work / "some.cif", "--out", out,
                                "--overwrite", "--n-electrons", "8")
        assert code == 2 and "choose another --out" in one_error_line(err, str(out))
    assert snapshot(work) == before

    out = tmp_path / "pred"
    args = ["predict", "--ckpt", checkpoint, "--structure", work / "some.cif", "--out", out, "--n-electrons", "8"]
    assert evaluate(capsys, *args)[0] == 0
    assert evaluate(capsys, *args, "--overwrite")[0] == 0  # our own output: replaced
    (out / "mine.txt").write_text("x")
    code, _, err = evaluate(capsys, *args, "--overwrite")
    assert code == 2 and "mine.txt" in one_error_line(err, str(out))
    assert (out / "mine.txt").read_text() == "x"
    for bad, message in (("--kspacing", "0"), ("--overlap-radius", "nan")):
        code, _, err = evaluate(capsys, *args[:-2], bad, message)
        assert code == 2 and bad in one_error_line(err)


def test_predict_names_a_structure_file_with_nan(checkpoint, tmp_path, capsys):
    cif = tmp_path / "nan.xyz"
    cif.write_text('2\nLattice="5.4 0 0 0 5.4 0 0 0 5.4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
                   "Si 0 0 0\nSi nan 1.3 1.3\n")
    code, _, err = evaluate(capsys, "predict", "--ckpt", checkpoint, "--structure", cif, "--out", tmp_path / "p")
    assert code == 2
    one_error_line(err, str(cif))
    assert not (tmp_path / "p").exists()


def test_bands_arguments_and_reference_structure(sources, tmp_path, capsys):
    ham = sources / NAMES[0]
    base = ["bands", "--hamiltonian", ham, "--out", tmp_path / "b"]
    for extra, named in ((["--path", "QQZ"], "'Q'"), (["--path", ""], "--path"), (["--npoints", "0"], "--npoints"),
                         (["--kspacing", "0"], "--kspacing")):
        code, _, err = evaluate(capsys, *base, *extra)
        assert code == 2, extra
        one_error_line(err, named)
    code, _, err = evaluate(capsys, *base, "--reference", sources / NAMES[1])  # Si2 vs C2: other structure
    assert code == 2 and "species differ" in one_error_line(err, str(sources / NAMES[1]))
    moved = Path(shutil.copytree(ham, tmp_path / "moved"))
    _set_position(moved, 1, np.loadtxt(moved / "site_positions.dat")[:, 1] + 0.05)
    code, _, err = evaluate(capsys, *base, "--reference", moved)
    assert code == 2 and "atom 2" in one_error_line(err, str(moved))
    assert not (tmp_path / "b").exists()


def test_eval_test_on_broken_datasets(checkpoint, packed, tmp_path, capsys):
    truncated = Path(shutil.copytree(packed, tmp_path / "truncated"))
    shard = truncated / "data.0000.lmdb"
    shard.write_bytes(shard.read_bytes()[:8192])
    flipped = Path(shutil.copytree(packed, tmp_path / "flipped"))
    _flip_inside_record(flipped, 0, [1000])
    for data, named in ((truncated, "data.0000.lmdb"), (flipped, "record 0")):
        code, _, err = evaluate(capsys, "test", "--ckpt", checkpoint, "--data", data, "--split", "all",
                                "--out", tmp_path / "report.json")
        assert code == 2
        one_error_line(err, named)
    assert not (tmp_path / "report.json").exists()


def test_second_run_with_the_same_name_never_mixes(packed, checkpoint, capsys):
    from deeph_lightning.training import SetupError

    run_dir = checkpoint.parent.parent
    before = snapshot(run_dir / "checkpoints")
    with pytest.raises(SetupError, match="already holds an earlier run.*ckpt_path=auto"):
        _train(packed, run_dir)
    with pytest.raises(SetupError, match="already holds an earlier run"):
        _train(packed, run_dir, ckpt_path=str(REPO / "elsewhere.ckpt"))
    assert snapshot(run_dir / "checkpoints") == before
    resumed = _train(packed, run_dir, ckpt_path="auto", **{"trainer.max_steps": 3})  # the same run goes on
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(before)
    assert resumed["last_checkpoint"] == str(checkpoint)
    (run_dir / "checkpoints" / "last-v1.ckpt").write_bytes(checkpoint.read_bytes())  # a folder mixed by old code
    with pytest.raises(SetupError, match="more than one run"):
        _train(packed, run_dir, ckpt_path="auto")
    (run_dir / "checkpoints" / "last-v1.ckpt").unlink()


# ---------------------------------------------------------------------------------------------------
# faults: pack killed with -9 (the parent alone, or its whole process group), then rerun


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_pack(src: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    """Start ``deeph-prep pack --workers 2`` and wait until both writers run inside its temporary folder."""
    proc = subprocess.Popen([sys.executable, "-m", "data_prep.cli", "pack", str(src), "--out", str(out), "--cutoff",
                             CUTOFF, "--workers", "2", "--quiet"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        workers = [k for k in _children(proc.pid) if list(out.parent.glob(f".{out.name}.tmp-*/data.*.lmdb"))]
        if len(workers) >= 2:
            return proc, workers
        assert proc.poll() is None, "pack finished before it could be killed"
        time.sleep(0.05)
    raise AssertionError("pack workers did not start")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_pack_then_rerun(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in sorted(os.listdir(quickstart_path()))[:16]:
        shutil.copytree(quickstart_path() / name, src / name)
    out = tmp_path / "ds"

    proc, workers = _start_pack(src, out)
    proc.send_signal(signal.SIGKILL)  # the parent only: its writers must stop too
    proc.wait()
    deadline = time.time() + 3  # well before they could finish their shards
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "pack workers outlived their parent"
    first = list(tmp_path.glob(".ds.tmp-*"))
    assert len(first) == 1 and not out.exists()

    proc, workers = _start_pack(src, out)  # a rerun removes the dead run's temporary folder ...
    assert not first[0].exists()
    os.killpg(proc.pid, signal.SIGKILL)  # ... and is killed too, with its whole group (a killed job step)
    proc.wait()
    assert not out.exists() and len(list(tmp_path.glob(".ds.tmp-*"))) == 1
    foreign = tmp_path / ".ds.tmp-notours"  # same name pattern, no marker of ours: left alone
    foreign.mkdir()

    code, _, _ = prep(capsys, "pack", src, "--out", out, "--cutoff", CUTOFF, "--workers", "2", "--quiet")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src", "ds", foreign.name])
    assert prep(capsys, "verify", out)[0] == 0


def _train_py(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "train.py", "+experiment=quickstart", "data.pack_from=null", "logger=csv",
                           "trainer.enable_progress_bar=false", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_train_py_errors_are_one_line(packed, checkpoint, tmp_path):
    r = _train_py(f"data.path={packed}", f"data.cutoff={CUTOFF}", "trainer.max_steps=abc",
                  f"hydra.run.dir={tmp_path / 'abc'}")
    assert r.returncode == 2
    # third-party warnings (Lightning's srun hint where SLURM is installed) are not ours to count
    ours = "\n".join(ln for ln in r.stderr.splitlines() if "site-packages/" not in ln)
    one_error_line(ours.split("\n", 1)[-1] if ours.startswith("[") else ours, "trainer", "max_steps")

    r = _train_py(f"data.path={packed}", f"data.cutoff={CUTOFF}", "model.target_gauge=vacuum",
                  f"hydra.run.dir={tmp_path / 'ref'}")
    assert r.returncode == 2
    ours = "\n".join(ln for ln in r.stderr.splitlines() if "site-packages/" not in ln)
    one_error_line(ours.split("\n", 1)[-1] if ours.startswith("[") else ours, "target_gauge", "vacuum")

    truncated = Path(shutil.copytree(packed, tmp_path / "truncated"))
    shard = truncated / "data.0000.lmdb"
    shard.write_bytes(shard.read_bytes()[:8192])
    r = _train_py(f"data.path={truncated}", f"data.cutoff={CUTOFF}", f"hydra.run.dir={tmp_path / 'trunc'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:") and "data.0000.lmdb" in ln]

    run_dir = checkpoint.parent.parent  # a finished run: starting again there (no ckpt_path) is refused at once
    r = _train_py(f"data.path={packed}", f"hydra.run.dir={run_dir}")
    assert r.returncode == 2
    one_error_line(r.stderr, str(run_dir), "ckpt_path=auto")
    assert not (run_dir / ".hydra").exists()  # refused before Hydra wrote the new run's config there


@pytest.mark.parametrize("bonds", ["C-C", {"C-C": "many"}, {"CC": [1, 1.5, 1.5, 1]}, {"C-C": [1, 1.5]}])
def test_a_checkpoint_with_malformed_training_bonds_is_refused(checkpoint, sources, tmp_path, capsys, bonds):
    import torch

    ckpt = torch.load(checkpoint, weights_only=True)
    assert ckpt["deeph"]["training_bonds"]  # train.py wrote a table
    ckpt["deeph"]["training_bonds"] = bonds
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    code, _, err = evaluate(capsys, "predict", "--ckpt", bad, "--structure", sources / NAMES[0], "--out", tmp_path / "p")
    assert code == 2 and "training_bonds" in one_error_line(err, str(bad))
    assert not (tmp_path / "p").exists()
