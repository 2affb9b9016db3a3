"""Compact shipping of DFT data: float32 H within 0.1 meV of the bands, S recomputed exactly, a shipped chunk
extracts back to folders that pack like the originals."""

import json
import re
import shutil

import numpy as np
import pytest
from ase import Atoms

from data_prep.deeph_format import read_deeph
from data_prep.embedded import quickstart_path
from data_prep.embedded.shipping import FLOAT32_BAND_TOLERANCE_MEV, compact, restore
from data_prep.kspace import band_energies


@pytest.fixture(scope="module")
def original():
    folders = sorted(p for p in quickstart_path().iterdir() if p.is_dir())
    return folders[0]


@pytest.fixture(scope="module")
def work_catalogue(tmp_path_factory):
    """The work catalogue (``generate_materials(440, 0)``) written once; each test gets ``catalogue_copy`` of it."""
    from data_prep.catalogue import write_catalogue
    from data_prep.materials import generate_materials

    folder = tmp_path_factory.mktemp("catalogue") / "structures"
    write_catalogue(generate_materials(440, 0), folder)
    return folder


def catalogue_copy(work_catalogue, tmp_path):
    return shutil.copytree(work_catalogue, tmp_path / "structures")


def test_compact_then_restore_gives_the_dft_folder(original, tmp_path):
    measured = compact(original, tmp_path / "shipped")
    assert not (tmp_path / "shipped" / "overlaps.h5").exists()
    info = json.loads((tmp_path / "shipped" / "info.json").read_text())
    assert info["shipping"]["hamiltonian_dtype"] == "float32"
    assert 0 <= measured["float32_band_change_meV"] <= FLOAT32_BAND_TOLERANCE_MEV
    shipped = read_deeph(tmp_path / "shipped", overlap=False)
    assert all(v.dtype == np.float32 for v in shipped.hamiltonians.values())

    restore(tmp_path / "shipped", tmp_path / "restored")
    a, b = read_deeph(original), read_deeph(tmp_path / "restored")
    assert set(a.overlaps) == set(b.overlaps) == set(b.hamiltonians)
    assert max(np.abs(a.overlaps[k] - b.overlaps[k]).max() for k in a.overlaps) < 1e-10
    h_dev = max(np.abs(a.hamiltonians[k] - b.hamiltonians[k]).max() for k in a.hamiltonians)
    assert 0 < h_dev < 1e-5  # float32 rounding, nothing more
    k = np.random.default_rng(1).random((3, 3))
    ea = band_energies(a.hamiltonians, a.overlaps, a.n_orbitals(), k)
    eb = band_energies(b.hamiltonians, b.overlaps, b.n_orbitals(), k)
    assert np.abs(ea - eb).max() * 1000 <= FLOAT32_BAND_TOLERANCE_MEV
    np.testing.assert_allclose(a.cell, b.cell)
    assert a.fermi_level == b.fermi_level and np.array_equal(a.numbers, b.numbers)


def test_shipped_folder_without_basis_is_refused(original, tmp_path):
    compact(original, tmp_path / "shipped")
    info_path = tmp_path / "shipped" / "info.json"
    info = json.loads(info_path.read_text())
    del info["dft"]["basis"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="no DFT basis"):
        restore(tmp_path / "shipped", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_finished_structures_ship_in_chunks_and_failures_are_kept_across_runs(tmp_path):
    """A DFT run of 6 catalogue structures (the quickstart's real DFT folders standing in), chunks of 2: finished
    structures ship in full chunks, a lone one waits unless flushed, failures survive the run's own files and a
    structure that failed twice is not handed to the next run again."""
    from data_prep.cli import main as deeph_prep
    from data_prep.embedded.build_universal import record_fidelity, retire, retry, ship, todo
    from data_prep.embedded.card import card
    from data_prep.embedded.datasets import current_structures, extract_chunked

    sources = sorted(p for p in quickstart_path().iterdir() if p.is_dir())[:6]
    structures, dft, out = tmp_path / "structures", tmp_path / "dft", tmp_path / "shipped"
    structures.mkdir(), dft.mkdir(), out.mkdir()
    ids = [f"X{k}_{p.name}" for k, p in enumerate(sources)]
    manifest = [{"id": sid, "file": f"{sid}.extxyz", "family": "binary", "prototype": "zincblende", "group":
                 "complicated" if k == 1 else "regular", "kind": "vacancy" if k == 1 else None, "formula": "CSi",
                 "n_atoms": 2, "elements": ["C", "Si"], "dims": 3, "index": k} for k, sid in enumerate(ids)]
    (structures / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    for sid, src in zip(ids, sources):
        d = read_deeph(src, hamiltonian=False, overlap=False)
        Atoms(d.numbers, positions=d.positions, cell=d.cell, pbc=d.pbc).write(structures / f"{sid}.extxyz")
    (dft / "settings.json").write_text(json.dumps({"xc": "pbe"}))
    failed, pending = ids[2], ids[5]
    for sid, src in zip(ids, sources):
        if sid not in (failed, pending):
            shutil.copytree(src, dft / sid)
    attempt = {"id": failed, "error": "SCF not converged", "time": "2026-12-05 10:00:00"}
    (dft / "failures.jsonl").write_text(json.dumps(attempt) + "\n")

    quiet = {"log": lambda m: None}
    assert ship(structures, dft, chunk_size=2, out=out, **quiet) == ["chunk-000.tar.xz", "chunk-001.tar.xz"]
    record = json.loads((out / "dataset.json").read_text())
    assert [c["ids"] for c in record["chunks"]] == [[ids[0], ids[1]], [ids[3], ids[4]]]
    assert record["failures"] == {failed: ["2026-12-05 10:00:00: SCF not converged"]}
    assert todo(structures, tmp_path / "todo", out) == 2  # failed once: retried, after the untried ones
    handed_out = [json.loads(line)["id"] for line in (tmp_path / "todo" / "manifest.jsonl").read_text().splitlines()]
    assert handed_out == [pending, failed]
    # the same error again in a later run (its line appended to the file that still holds the first one)
    with open(dft / "failures.jsonl", "a") as f:
        f.write(json.dumps({**attempt, "time": "2026-12-06 09:00:00"}) + "\n")
    assert todo(structures, tmp_path / "todo", out, dft=dft) == 1  # a restarted run sees its own failures
    assert todo(structures, tmp_path / "todo", out) == 2  # only the shipped record: failed once
    shutil.copytree(sources[5], dft / pending)
    assert ship(structures, dft, chunk_size=2, out=out, **quiet) == []  # one finished: waits for a full chunk
    assert ship(structures, dft, chunk_size=2, out=out, flush=True, **quiet) == ["chunk-002.tar.xz"]
    assert ship(structures, dft, chunk_size=2, out=out, flush=True, **quiet) == []  # shipped chunks never change
    record = json.loads((out / "dataset.json").read_text())
    assert record["failures"] == {failed: ["2026-12-05 10:00:00: SCF not converged",
                                           "2026-12-06 09:00:00: SCF not converged"]}
    (dft / "failures.jsonl").unlink()  # the run's folder is gone (a new session): the record keeps the failures
    ship(structures, dft, chunk_size=2, out=out, flush=True, **quiet)
    assert len(json.loads((out / "dataset.json").read_text())["failures"][failed]) == 2
    assert todo(structures, tmp_path / "todo", out) == 0  # failed twice: not tried again
    assert (tmp_path / "todo" / "manifest.jsonl").read_text() == ""

    checked = dft / ids[0]  # the real fidelity check (SCF redone from the recorded recipe) on one structure
    # quickstart blocks end at 7 Å: tens of meV at the band edges of this 5 eV gap insulator
    assert deeph_prep(["check", str(checked), "--window", "2", "--json", str(tmp_path / "check.json"),
                       "--tolerance", "500"]) == 0
    assert record_fidelity(tmp_path / "check.json", out) == 1
    assert json.loads((out / "dataset.json").read_text())["fidelity"][ids[0]]["n_values"] > 0  # edge bands seen
    text = card(folder=out)
    assert "5 structures shipped" in text and "1 failed twice" in text
    # each structure's nearest-neighbour bonds are recorded at shipping, and the card counts the pairs
    from data_prep.bonds import structure_bonds

    for sid in current_structures(record):
        st = read_deeph(dft / sid, hamiltonian=False, overlap=False)
        want = {k: [n, pytest.approx(lo, abs=1e-4)] for k, (n, lo, _) in
                structure_bonds(st.numbers, st.positions, st.cell, st.pbc).items()}
        assert record["structures"][sid]["bonds"] == want
    pairs = {p for sid in current_structures(record) for p in record["structures"][sid]["bonds"]}
    assert f"Nearest-neighbour bonds: {len(pairs)} different element pairs" in text
    # and the program that computed it (the card counts its releases)
    code = json.loads((dft / ids[0] / "info.json").read_text())["dft"]["code"]
    assert all(record["structures"][sid]["code"] == code for sid in current_structures(record))
    assert f"DFT program (one recipe across its releases): {code} (5 structures)." in text
    assert "`deeph-prep check` on 1 structures" in text and f"(worst: {ids[0]})" in text

    folder = extract_chunked(out, tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir()) == sorted(set(ids) - {failed})
    assert extract_chunked(out, tmp_path / "cache") == folder  # once
    restored = read_deeph(folder / ids[1])
    assert restored.info["catalogue"]["kind"] == "vacancy"
    assert deeph_prep(["pack", str(folder), "--out", str(tmp_path / "lmdb"), "--cutoff", "6.0"]) == 0
    assert deeph_prep(["verify", str(tmp_path / "lmdb")]) == 0

    # a recipe fix: a retired structure leaves the data, is handed out again and ships recomputed
    with pytest.raises(KeyError, match="not shipped"):
        retire([failed], "finer grid", out)
    assert retire([ids[3]], "finer grid", out) == 1
    assert ids[3] not in {p.name for p in extract_chunked(out, tmp_path / "cache").iterdir()}
    assert "Retired (1, not in the data until recomputed by the next runs): finer grid." in card(folder=out)
    assert todo(structures, tmp_path / "todo", out) == 1
    dft2 = tmp_path / "dft2"
    dft2.mkdir()
    (dft2 / "settings.json").write_text(json.dumps({"xc": "pbe", "ke_cutoff_d": 120.0}))
    shutil.copytree(sources[3], dft2 / ids[3])
    assert ship(structures, dft2, chunk_size=2, out=out, flush=True, **quiet) == ["chunk-003.tar.xz"]
    record = json.loads((out / "dataset.json").read_text())
    assert record["retired"] == {} and current_structures(record)[ids[3]] == "chunk-003.tar.xz"
    assert sorted(p.name for p in extract_chunked(out, tmp_path / "cache").iterdir()) == sorted(set(ids) - {failed})
    assert "5 structures shipped" in card(folder=out)

    # a new fallback for its error: the structure that failed twice is handed out again, first, not last
    (dft / "failures.jsonl").write_text("".join(json.dumps({**attempt, "time": t}) + "\n"
                                                for t in ("2026-12-05 10:00:00", "2026-12-06 09:00:00")))
    assert retry("timed out", "longer time limit", out) == 0  # not its error
    assert retry("SCF not converged", "damped start", out) == 1
    assert todo(structures, tmp_path / "todo", out, dft=dft) == 1  # the run folder's old lines no longer count
    ship(structures, dft, chunk_size=2, out=out, flush=True, **quiet)  # nor when the next ship reads them
    record = json.loads((out / "dataset.json").read_text())
    assert failed not in record["failures"] and len(record["superseded_failures"][failed]["errors"]) == 2

    (out / "chunk-001.tar.xz").write_bytes((out / "chunk-001.tar.xz").read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(ValueError, match="checksum"):
        extract_chunked(out, tmp_path / "cache2")
    assert list((tmp_path / "cache2").iterdir()) == []  # nothing half-extracted left


def test_todo_order_gives_every_element_a_structure_before_any_gets_a_second():
    from collections import Counter

    from data_prep.embedded.build_universal import coverage_order

    entries = [{"id": f"s{k}", "index": k, "elements": els} for k, els in enumerate(
        [["Li"], ["Li", "H"], ["Li"], ["Fe"], ["Fe", "O"], ["O"], ["Li", "O"]])]
    cost = {"s0": 1, "s1": 2, "s2": 3, "s3": 50, "s4": 90, "s5": 4, "s6": 5}
    order = [m["id"] for m in coverage_order(entries, cost, Counter())]
    assert sorted(order) == sorted(cost)
    seen = set()
    for sid in order[:3]:  # Fe, H, Li, O each reached within the first three picks (s1 covers H and Li)
        seen |= set(entries[int(sid[1:])]["elements"])
    assert seen == {"Fe", "H", "Li", "O"}
    assert order.index("s3") < order.index("s2")  # the expensive Fe cell before a third Li one
    assert [m["id"] for m in coverage_order(entries, cost, Counter({"Fe": 5, "H": 5, "O": 5}))][0] == "s0"
    # with bonds: Li's pick is the cheapest per pair not yet bonded (s1 bonds H-Li, s0 and s2 only Li-Li)
    bonds = {"s0": {"Li-Li"}, "s1": {"H-Li"}, "s2": {"Li-Li"}, "s3": {"Fe-Fe"}, "s4": {"Fe-O"}, "s5": {"O-O"},
             "s6": {"Li-O"}}
    have = Counter({"Fe": 5, "H": 5, "O": 5})
    cost["s1"] = 1.8
    assert [m["id"] for m in coverage_order(entries, cost, have, bonds, {"Li-Li"})][0] == "s1"  # 1.8/2 < 1/1
    assert [m["id"] for m in coverage_order(entries, cost, have, bonds, set())][0] == "s0"  # 1/2 < 1.8/2
    cost["s1"] = 2.5  # over twice the price of one that bonds nothing new: no longer first
    assert [m["id"] for m in coverage_order(entries, cost, have, bonds, {"Li-Li"})][0] == "s0"


def test_complicated_cases_get_every_tenth_place_while_they_last():
    from data_prep.embedded.build_universal import with_complicated_share

    order = [{"id": f"r{k}", "group": "regular"} for k in range(30)]
    order[3:3] = [{"id": f"c{k}", "group": "complicated"} for k in range(4)]  # coverage order put them early
    order += [{"id": "c-late", "group": "complicated"}]
    ids = [m["id"] for m in with_complicated_share(order, every=10)]
    assert sorted(ids) == sorted(m["id"] for m in order)
    assert [ids.index(c) for c in ("c0", "c1", "c2")] == [9, 19, 29]  # their own order kept
    assert ids[-2:] == ["c3", "c-late"]  # the regular ones ran out: the rest follow


def test_the_dataset_card_in_the_docs_matches_what_is_shipped():
    from pathlib import Path

    from data_prep.embedded.card import card

    docs = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    assert card("universal-mini") in docs, "rerun: python -m data_prep.embedded.card --write docs/data.md"


def test_a_finished_structure_whose_blocks_fail_a_shipping_check_is_recorded_not_fatal(tmp_path):
    """A computed structure whose S(k) is not positive definite (here: its off-site overlaps scaled up, as a
    near-linearly-dependent or truncated basis gives) is recorded with its reason; the others ship and the bad one
    is not handed to the next run."""
    from data_prep.deeph_format import write_deeph
    from data_prep.embedded.build_universal import ship, todo
    from data_prep.embedded.card import card

    sources = sorted(p for p in quickstart_path().iterdir() if p.is_dir())[:3]
    structures, dft, out = tmp_path / "structures", tmp_path / "dft", tmp_path / "shipped"
    structures.mkdir(), dft.mkdir(), out.mkdir()
    ids = [f"Y{k}_{p.name}" for k, p in enumerate(sources)]
    manifest = [{"id": sid, "file": f"{sid}.extxyz", "family": "binary", "prototype": "zincblende",
                 "group": "regular", "kind": None, "formula": "CSi", "n_atoms": 2, "elements": ["C", "Si"],
                 "dims": 3, "index": k} for k, sid in enumerate(ids)]
    (structures / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (dft / "settings.json").write_text(json.dumps({"xc": "pbe"}))
    for sid, src in zip(ids, sources):
        shutil.copytree(src, dft / sid)
    bad = ids[1]
    st = read_deeph(dft / bad)
    st.overlaps = {k: v * (1.0 if k[:3] == (0, 0, 0) and k[3] == k[4] else 6.0) for k, v in st.overlaps.items()}
    shutil.rmtree(dft / bad)
    write_deeph(st, dft / bad)

    logged = []
    assert ship(structures, dft, chunk_size=2, out=out, flush=True, log=logged.append) == ["chunk-000.tar.xz"]
    record = json.loads((out / "dataset.json").read_text())
    assert record["chunks"][0]["ids"] == [ids[0], ids[2]] and bad not in record["structures"]
    assert "not positive definite" in record["unshippable"][bad] and bad in record["unshippable"][bad]
    assert any(line.startswith(f"{bad}: not shipped") for line in logged)
    assert todo(structures, tmp_path / "todo", out) == 0
    text = card(folder=out)
    assert "1 computed but not shippable" in text and f"| {bad} | not shippable:" in text
    assert sorted(p.name for p in out.iterdir()) == ["chunk-000.tar.xz", "dataset.json"]  # no staging left


def test_a_structure_whose_stored_overlaps_are_indefinite_somewhere_ships_with_that_recorded(tmp_path):
    """RbH as shipped: the DFT's S(k) is positive definite, but the stored blocks end at 9.5 Å and Rb 5s overlaps
    beyond it, so S(k) of the blocks is indefinite near the zone boundary. Its blocks are exact DFT and train
    a model: it ships, with the smallest eigenvalue of the check mesh recorded and listed on the card, and the
    float32 check runs at k-points where S(k) is positive definite."""
    import tarfile

    from data_prep.embedded.build_universal import ship
    from data_prep.embedded.card import card
    from data_prep.embedded.datasets import CHUNKED, current_structures, dataset_record
    from data_prep.kspace import overlap_check_kpoints, overlap_floor

    sid = "RbH_rocksalt_s0_00015"
    record = dataset_record("universal-mini")
    with tarfile.open(CHUNKED["universal-mini"] / current_structures(record)[sid], "r:xz") as tar:
        tar.extractall(tmp_path / "chunk", members=[m for m in tar.getmembers() if m.name.startswith(sid)],
                       filter="data")
    structures, dft, out = tmp_path / "structures", tmp_path / "dft", tmp_path / "shipped"
    structures.mkdir(), dft.mkdir(), out.mkdir()
    restore(tmp_path / "chunk" / sid, dft / sid)  # the DFT run's folder again: float64 H, exact S
    meta = record["structures"][sid]
    (structures / "manifest.jsonl").write_text(json.dumps(
        {"id": sid, "file": f"{sid}.extxyz", **{k: meta[k] for k in ("family", "prototype", "group", "kind",
                                                                       "formula", "n_atoms", "elements", "dims",
                                                                       "index")}}) + "\n")
    (dft / "settings.json").write_text(json.dumps({"xc": "pbe"}))

    st = read_deeph(dft / sid)
    floor = overlap_floor(st.overlaps, st.n_orbitals(), overlap_check_kpoints(st.cell))
    assert floor.min() < -0.01 and (floor > 0).any()
    assert ship(structures, dft, chunk_size=1, out=out, flush=True, log=lambda _: None) == ["chunk-000.tar.xz"]
    shipped = json.loads((out / "dataset.json").read_text())["structures"][sid]
    assert shipped["overlap_min_eigenvalue"] == pytest.approx(floor.min(), abs=1e-6)
    assert shipped["float32_band_change_meV"] <= 0.1
    assert f"{sid} {floor.min():.3f}" in card(folder=out)


def test_supplement_tops_up_elements_that_would_end_short_and_adds_nothing_twice(work_catalogue, tmp_path):
    """The real catalogue, nothing shipped yet, two Ca structures given up: every element ends with at least
    12 + the margin of structures still possible, from a second draw, and a second call adds nothing."""
    from collections import Counter

    from data_prep.embedded.build_universal import COVERAGE_MARGIN, MIN_PER_ELEMENT, supplement

    structures, out = tmp_path / "structures", tmp_path / "shipped"
    catalogue_copy(work_catalogue, tmp_path)
    out.mkdir()
    before = [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines()]
    given_up = [m["id"] for m in before if "Ca" in m["elements"]][:2]
    (out / "dataset.json").write_text(json.dumps({"failures": {sid: ["SCF", "SCF again"] for sid in given_up}}))

    added = supplement(structures, out)
    after = [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines()]
    assert after[:len(before)] == before and [m["id"] for m in after[len(before):]] == added
    assert all("_s1_" in sid and (structures / f"{sid}.extxyz").is_file() for sid in added)
    counts = Counter(e for m in after if m["id"] not in given_up for e in m["elements"])
    assert min(counts.values()) >= MIN_PER_ELEMENT + COVERAGE_MARGIN
    old_counts = Counter(e for m in before if m["id"] not in given_up for e in m["elements"])
    short = {e for e, n in old_counts.items() if n < MIN_PER_ELEMENT + COVERAGE_MARGIN}
    assert "Ca" in short and all(short & set(m["elements"]) for m in after[len(before):])
    new_kinds = [(m["formula"], m["prototype"]) for m in after[len(before):]]
    assert len(set(new_kinds)) == len(new_kinds) and not set(new_kinds) & {(m["formula"], m["prototype"]) for m in before}
    assert supplement(structures, out) == []
    assert not [p for p in structures.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize("shipped", ["none", "the shipped record"])
def test_bond_supplement_bonds_single_system_pairs_in_a_second_system_once(work_catalogue, tmp_path, shipped):
    """The real catalogue, with nothing shipped or with the repository's shipped structures (read, not written):
    alloys go in while they bond a pair that only one chemical system bonds, and a second call adds nothing."""
    from ase.io import read

    from data_prep.bonds import structure_bonds
    from data_prep.embedded.build_universal import OUT, bond_supplement

    structures = tmp_path / "structures"
    catalogue_copy(work_catalogue, tmp_path)
    out = OUT if shipped != "none" else tmp_path / "shipped"
    out.mkdir(exist_ok=True)

    def single_system_pairs() -> set:
        systems: dict = {}
        for line in (structures / "manifest.jsonl").read_text().splitlines():
            m = json.loads(line)
            a = read(structures / m["file"])
            for pair in structure_bonds(a.numbers, a.positions, a.cell[:], a.pbc):
                systems.setdefault(pair, set()).add(frozenset(m["elements"]))
        return {p for p, s in systems.items() if len(s) == 1}

    before = single_system_pairs()
    record = json.loads((out / "dataset.json").read_text()) if (out / "dataset.json").is_file() else {}
    shipped_before = sum(1 for sid in record.get("structures", {}) if re.search(r"_s[23]_\d+$", sid))
    added = bond_supplement(structures, out, max_total=5 + shipped_before)
    assert len(added) == 5  # the cap counts what earlier runs added (shipped ones too)
    assert bond_supplement(structures, out, max_total=5 + shipped_before) == []
    added += bond_supplement(structures, out)
    after = single_system_pairs()
    assert added and all("_alloy_s2_" in sid or "_molecule-" in sid and sid.split("_")[-2] == "s3" for sid in added)
    new = [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines()][-len(added):]
    assert not any(e in ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni") for m in new for e in m["elements"])
    assert len(after) < len(before)
    if shipped == "none":
        assert len(before - after) >= len(added)  # each alloy bonds at least one such pair in a second system
    assert bond_supplement(structures, out) == []


def test_supplement_counts_open_shell_structures_by_their_chance_of_finishing(work_catalogue, tmp_path):
    """Four failed Heuslers make every open-3d-shell Heusler count 1/5: elements that rely on them get more
    structures, picked by cost per chance of finishing, though their raw count already met the target."""
    from collections import Counter

    from data_prep.embedded.build_universal import (COVERAGE_MARGIN, MIN_PER_ELEMENT, _catalogue_state,
                                                    finish_chances, supplement, todo)

    structures, out = tmp_path / "structures", tmp_path / "shipped"
    catalogue_copy(work_catalogue, tmp_path)
    out.mkdir()
    before = [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines()]
    failed = [m["id"] for m in before if m["prototype"] == "heusler"][:4]
    (out / "dataset.json").write_text(json.dumps({"failures": {sid: ["SCF"] for sid in failed}}))
    manifest, shipped, _ = _catalogue_state(structures, out)
    chances = finish_chances(manifest, shipped, json.loads((out / "dataset.json").read_text()))
    assert chances == {"heusler": 1 / 5}

    target = MIN_PER_ELEMENT + COVERAGE_MARGIN
    open_shell = {"Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni"}
    raw, weighted = Counter(), Counter()
    for m in before:  # failed once: still to compute
        raw.update(m["elements"])
        heusler = m["prototype"] == "heusler" and open_shell & set(m["elements"])
        weighted.update({e: 0.2 if heusler else 1.0 for e in m["elements"]})
    short_when_weighted = {e for e in raw if raw[e] >= target > weighted[e]}
    assert short_when_weighted
    added = supplement(structures, out)
    new = [json.loads(line) for line in (structures / "manifest.jsonl").read_text().splitlines()][len(before):]
    assert added and all(any(e in m["elements"] for m in new) for e in short_when_weighted)
    assert sum(m["prototype"] == "heusler" for m in new) < len(new) / 2
    assert supplement(structures, out) == []

    # todo: an untried Heusler costs 5 tries per finished structure, so it is handed out later than without record
    def order(record_folder):
        todo(structures, tmp_path / "todo", record_folder)
        return [json.loads(line)["id"] for line in (tmp_path / "todo" / "manifest.jsonl").read_text().splitlines()]

    (tmp_path / "no-record").mkdir()
    plain, weighted = order(tmp_path / "no-record"), order(out)
    heuslers = {m["id"] for m in before if m["prototype"] == "heusler" and open_shell & set(m["elements"])}
    untried = [sid for sid in plain if sid in heuslers - set(failed)]
    assert untried and all(weighted.index(sid) > plain.index(sid) for sid in untried[:3])


def test_todo_hands_out_interrupted_scfs_first(tmp_path):
    """A run stopped mid-SCF left a checkpoint: the next todo puts that structure first, so it resumes at once."""
    from data_prep.catalogue import write_catalogue
    from data_prep.dft.batch import scf_checkpoint
    from data_prep.embedded.build_universal import todo
    from data_prep.materials import generate_materials

    structures, dft, out = tmp_path / "structures", tmp_path / "dft", tmp_path / "shipped"
    write_catalogue(generate_materials(8, 0), structures)
    dft.mkdir(), out.mkdir()

    def handed_out(**kw):
        todo(structures, tmp_path / "todo", out, **kw)
        return [json.loads(line)["id"] for line in (tmp_path / "todo" / "manifest.jsonl").read_text().splitlines()]

    order = handed_out(dft=dft)
    scf_checkpoint(dft, order[-1]).write_bytes(b"")
    assert handed_out(dft=dft) == [order[-1]] + order[:-1]
    assert handed_out() == order  # without the run folder nothing is known to resume
