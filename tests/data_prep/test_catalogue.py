"""The structure catalogue: deterministic, prefix-stable ids, valid geometry, balanced elements, importable."""

import collections
import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from data_prep.catalogue import PROTOTYPES, generate, min_distance_ratio
from data_prep.cli import main
from data_prep.dft import DFTSettings, check_structure
from data_prep.structures import read_structures

ELEMENTS = ["H", "C", "O", "Si", "Ga", "Fe", "Ba"]


def test_same_seed_same_structures_and_prefix_stable():
    a, b = generate(12, seed=5, elements=ELEMENTS), generate(6, seed=5, elements=ELEMENTS)
    assert [x[0] for x in a[:6]] == [x[0] for x in b]
    for (_, x, _), (_, y, _) in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and np.array_equal(x.cell[:], y.cell[:])
    c = generate(6, seed=6, elements=ELEMENTS)
    assert [x[0] for x in c] != [x[0] for x in b]


@pytest.mark.parametrize("proto", [p.name for p in PROTOTYPES])
def test_every_prototype_builds_valid_structures(proto):
    for sid, atoms, meta in generate(3, seed=1, elements=ELEMENTS, prototypes=[proto], max_atoms=16):
        assert 1 <= len(atoms) <= 16 and meta["prototype"] == proto and proto in sid
        assert min_distance_ratio(atoms) > 0.7
        check_structure(atoms, DFTSettings(), sid)  # DFT would accept it
        if meta["dims"] in (0, 2):  # vacuum across layers / around molecules
            extent = np.ptp(atoms.positions @ np.linalg.inv(atoms.cell[:])[:, 2]) * atoms.cell.lengths()[2]
            assert atoms.cell.lengths()[2] - extent > 12.0


def test_elements_are_balanced():
    structures = generate(100, seed=0, elements=ELEMENTS)
    counts = collections.Counter(e for *_, m in structures for e in m["elements"])
    assert set(counts) == set(ELEMENTS)
    assert max(counts.values()) < 1.6 * min(counts.values()), counts


def test_generate_command_writes_files_and_manifest_that_dft_reads(tmp_path):
    assert main(["generate", "--mode", "random", "--n", "4", "--seed", "2", "--elements", "Si,O", "--out", str(tmp_path)]) == 0
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 4 and all((tmp_path / m["file"]).is_file() for m in manifest)
    read = read_structures([tmp_path])
    assert [sid for sid, _ in read] == [m["id"] for m in manifest]
    original = generate(4, seed=2, elements=["Si", "O"])
    assert all(np.allclose(a.positions, o[1].positions) for (_, a), o in zip(read, original))


def test_import_cif_poscar_and_multiframe(tmp_path):
    si = Atoms("Si2", scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25]],
               cell=[[0, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]], pbc=True)
    write(tmp_path / "si.cif", si)
    write(tmp_path / "POSCAR", si, format="vasp")
    write(tmp_path / "two.extxyz", [si, si])
    ids = [sid for sid, _ in read_structures([tmp_path / "si.cif", tmp_path / "POSCAR", tmp_path / "two.extxyz"])]
    assert ids == ["si", "POSCAR", "two@0", "two@1"]
    with pytest.raises(ValueError, match="twice"):
        read_structures([tmp_path / "si.cif", tmp_path / "si.cif"])
    (tmp_path / "junk.cif").write_text("not a cif\n")
    with pytest.raises(ValueError, match="junk.cif"):
        read_structures([tmp_path / "junk.cif"])


def test_unknown_element_or_prototype_is_an_error():
    with pytest.raises(ValueError, match="Xx"):
        generate(1, elements=["Si", "Xx"])
    with pytest.raises(ValueError, match="prototype"):
        generate(1, elements=["Si"], prototypes=["nonsense"])
