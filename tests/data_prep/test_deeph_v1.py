"""DeepH-pack v1 layout: orbital convention, files, both layouts packing to the same records, conversion, errors.

Structures with s, p, d and f shells are real PySCF integrals (kinetic energy as "H", exact overlap S) in a
small made-up Gaussian basis, converted to OpenMX order by the DFT runner's own map.
"""

import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase.build import bulk

from data_prep.basis import OPENMX_TO_V1, _openmx_polynomials, openmx_to_v1_order
from data_prep.cli import main as prep_main
from data_prep.deeph_format import DeepHStructure, deeph_layout, read_deeph, write_deeph
from data_prep.deeph_v1 import atom_order
from data_prep.dft.orbitals import ao_transform, pyscf_to_openmx
from data_prep.lmdb_dataset import LmdbDataset, pack_folders

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deeph_eval"))
from pyscf_integrals import integral_blocks  # noqa: E402

# Ti: s p d, O: s p f (compact Gaussians: few lattice vectors R carry blocks)
DF_BASIS = {"Ti": [[0, [2.0, 1.0]], [1, [1.5, 1.0]], [2, [1.2, 1.0]]],
            "O": [[0, [2.0, 1.0]], [1, [1.5, 1.0]], [3, [1.2, 1.0]]]}


def df_structure(atoms):
    """(structure in OpenMX order, the same blocks in PySCF's AO order) for ``atoms`` in DF_BASIS."""
    t, s, shells, _ = integral_blocks(atoms, DF_BASIS)
    to_openmx = [ao_transform([ls]) for ls in shells]

    def conv(blocks):
        return {k: to_openmx[k[3]] @ b @ to_openmx[k[4]].T for k, b in blocks.items()}

    st = DeepHStructure(cell=np.asarray(atoms.cell[:]), positions=atoms.positions.copy(),
                        numbers=atoms.numbers.astype(np.int64), orbital_types=shells, fermi_level=1.25,
                        hamiltonians=conv(t), overlaps=conv(s), info={"n_electrons": 8.0, "note": "integrals"})
    return st, t


@pytest.fixture(scope="module")
def tio():
    """Rocksalt TiO, atoms already grouped by species (Ti, O)."""
    return df_structure(bulk("TiO", "rocksalt", a=4.2))


@pytest.fixture(scope="module")
def tio_interleaved():
    """A 2x1x1 TiO supercell with atoms Ti, O, Ti, O: the v1 POSCAR must reorder them to Ti, Ti, O, O."""
    return df_structure(bulk("TiO", "rocksalt", a=4.2).repeat((2, 1, 1)))


def permuted(st: DeepHStructure, order) -> DeepHStructure:
    """``st`` with atom k of the result = atom order[k] of ``st``."""
    new = np.empty_like(order)
    new[order] = np.arange(len(order))

    def ren(blocks):
        return {(rx, ry, rz, int(new[i]), int(new[j])): b for (rx, ry, rz, i, j), b in blocks.items()}

    return DeepHStructure(**{**st.__dict__, "positions": st.positions[order], "numbers": st.numbers[order],
                             "orbital_types": [st.orbital_types[a] for a in order],
                             "hamiltonians": ren(st.hamiltonians), "overlaps": ren(st.overlaps)})


def assert_same_structure(a: DeepHStructure, b: DeepHStructure):
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.orbital_types == b.orbital_types and a.fermi_level == b.fermi_level and a.isorthogonal == b.isorthogonal
    for name in ("hamiltonians", "overlaps"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.keys() == y.keys(), name
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=f"{name} {k}")


def records(path):
    ds = LmdbDataset(path)
    return [ds[i] for i in range(len(ds))]


def assert_same_records(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key == "source":  # the folder path: the only field allowed to differ
                continue
            if isinstance(ra[key], np.ndarray):
                assert ra[key].dtype == rb[key].dtype, key
                np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
            else:
                assert ra[key] == rb[key], key


# ---------------------------------------------------------------------------------------------------
# the orbital convention


def _standard_real_harmonics(l, pts):
    """Real spherical harmonics m = -l..l from scipy's complex ones (Condon-Shortley phase removed)."""
    from scipy.special import sph_harm_y

    theta = np.arccos(np.clip(pts[:, 2], -1, 1))
    phi = np.arctan2(pts[:, 1], pts[:, 0])
    cols = []
    for m in range(-l, l + 1):
        y = sph_harm_y(l, abs(m), theta, phi)
        if m < 0:
            cols.append(np.sqrt(2) * (-1) ** m * y.imag)
        elif m == 0:
            cols.append(y.real)
        else:
            cols.append(np.sqrt(2) * (-1) ** m * y.real)
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_v1_order_is_the_standard_real_harmonic_order_without_sign_changes(l):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    ours = _openmx_polynomials(l, pts)[:, list(OPENMX_TO_V1[l])]
    ref = _standard_real_harmonics(l, pts)
    for m in range(2 * l + 1):  # same function up to a positive normalisation
        ratio = ours[:, m] / ref[:, m]
        assert np.all(ratio > 0) and np.ptp(ratio) < 1e-10 * abs(ratio).max(), (l, m)
    if l >= 2:  # PySCF orders d and f shells by m = -l..l with the same signs
        np.testing.assert_array_equal(pyscf_to_openmx(l)[list(OPENMX_TO_V1[l])], np.eye(2 * l + 1))
    assert openmx_to_v1_order([1, l]).tolist() == [1, 2, 0] + [3 + k for k in OPENMX_TO_V1[l]]


def test_v1_files_hold_m_ordered_blocks_and_0_based_pairs(tio, tmp_path):
    st, pyscf_blocks = tio
    write_deeph(st, tmp_path / "tio", layout="v1")
    assert deeph_layout(tmp_path / "tio") == "v1"
    visible = sorted(p.name for p in (tmp_path / "tio").iterdir() if not p.name.startswith("."))
    assert visible == ["POSCAR", "hamiltonian.h5", "info.json", "overlap.h5"]  # plus our .deeph-output.json
    info = json.loads((tmp_path / "tio" / "info.json").read_text())
    assert info["elements_orbital_map"] == {"Ti": [0, 1, 2], "O": [0, 1, 3]}
    assert (info["atoms_quantity"], info["orbits_quantity"], info["spinful"], info["orthogonal_basis"]) == (2, 20, False, False)
    assert info["fermi_energy_eV"] == 1.25 and info["n_electrons"] == 8.0
    assert (tmp_path / "tio" / "POSCAR").read_text().splitlines()[5:8] == ["Ti O", "1 1", "Cartesian"]
    # PySCF's order differs from v1 for p only: (px, py, pz) -> (py, pz, px)
    p_only = [np.concatenate([start + (np.array([1, 2, 0]) if l == 1 else np.arange(2 * l + 1))
                              for l, start in zip(ls, np.cumsum([0] + [2 * l + 1 for l in ls])[:-1])])
              for ls in st.orbital_types]
    with h5py.File(tmp_path / "tio" / "hamiltonian.h5") as f:
        pairs, shapes, bounds, entries = (f[k][()] for k in ("atom_pairs", "chunk_shapes", "chunk_boundaries", "entries"))
    assert pairs.dtype == shapes.dtype == bounds.dtype == np.int64 and pairs.shape == (len(pyscf_blocks), 5)
    assert pairs[:, 3:].min() == 0 and pairs[:, 3:].max() == 1
    assert bounds[0] == 0 and bounds[-1] == entries.size
    for k, (rx, ry, rz, i, j) in enumerate(pairs.tolist()):
        chunk = entries[bounds[k]:bounds[k + 1]].reshape(shapes[k])
        expected = pyscf_blocks[(rx, ry, rz, i, j)][p_only[i]][:, p_only[j]]
        np.testing.assert_allclose(chunk, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# both layouts are the same data


def test_both_layouts_pack_to_identical_records(tio, tio_interleaved, tmp_path):
    st, _ = tio
    inter, _ = tio_interleaved
    order = atom_order(inter)
    assert order.tolist() == [0, 2, 1, 3]
    write_deeph(st, tmp_path / "legacy" / "tio")
    write_deeph(permuted(inter, order), tmp_path / "legacy" / "tio2")  # our layout, atoms in POSCAR order
    write_deeph(st, tmp_path / "v1" / "tio", layout="v1")
    write_deeph(inter, tmp_path / "v1" / "tio2", layout="v1")
    assert (tmp_path / "v1" / "tio2" / "POSCAR").read_text().splitlines()[5:7] == ["Ti O", "2 2"]
    assert_same_structure(read_deeph(tmp_path / "v1" / "tio2"), permuted(inter, order))
    kw = dict(cutoff=3.5, split_seed=0, progress=False)  # the blocks of this compact basis reach ~4 Å
    a = pack_folders([tmp_path / "legacy"], tmp_path / "a.lmdb", **kw)
    b = pack_folders([tmp_path / "v1"], tmp_path / "b.lmdb", **kw)
    assert_same_records(records(a), records(b))
    assert [r["structure_id"] for r in records(b)] == ["tio", "tio2"]
    meta_a, meta_b = (json.loads((p / "metadata.json").read_text()) for p in (a, b))
    assert meta_a["basis"] == meta_b["basis"] == {"8": [0, 1, 3], "22": [0, 1, 2]}


def test_convert_round_trip_legacy_v1_legacy_is_identical(tio, tio_interleaved, tmp_path, capsys):
    st, _ = tio
    inter, _ = tio_interleaved
    src = tmp_path / "src"
    write_deeph(st, src / "tio")
    write_deeph(inter, src / "inter")
    assert prep_main(["convert", str(src), "--out", str(tmp_path / "v1"), "--to", "v1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "atoms regrouped by species" in next(ln for ln in lines if ln.startswith(str((src / "inter").resolve())))
    assert "regrouped" not in next(ln for ln in lines if ln.startswith(str((src / "tio").resolve())))
    assert {deeph_layout(p) for p in (tmp_path / "v1").iterdir() if p.is_dir()} == {"v1"}
    assert prep_main(["convert", str(tmp_path / "v1"), "--out", str(tmp_path / "back"), "--to", "legacy"]) == 0
    back = read_deeph(tmp_path / "back" / "tio")
    assert_same_structure(back, read_deeph(src / "tio"))
    assert back.info == read_deeph(src / "tio").info
    for name in ("lat.dat", "rlat.dat", "site_positions.dat", "element.dat", "orbital_types.dat", "R_list.dat"):
        assert (tmp_path / "back" / "tio" / name).read_bytes() == (src / "tio" / name).read_bytes(), name
    # interleaved atoms come back grouped by species (the v1 POSCAR's order), otherwise the same numbers
    assert_same_structure(read_deeph(tmp_path / "back" / "inter"), permuted(inter, atom_order(inter)))
    # a single folder converts to a single folder
    assert prep_main(["convert", str(src / "tio"), "--out", str(tmp_path / "one"), "--to", "v1"]) == 0
    assert_same_structure(read_deeph(tmp_path / "one"), read_deeph(src / "tio"))


def test_bands_from_both_layouts_are_identical(tio, tmp_path):
    from deeph_eval.cli import main as eval_main

    st, _ = tio
    write_deeph(st, tmp_path / "legacy")
    write_deeph(st, tmp_path / "v1", layout="v1")
    energies = []
    for name in ("legacy", "v1"):
        args = ["bands", "--hamiltonian", str(tmp_path / name), "--out", str(tmp_path / f"bands_{name}"),
                "--n-electrons", "8", "--npoints", "30", "--kspacing", "0.5"]
        assert eval_main(args) == 0
        energies.append(np.array(json.loads((tmp_path / f"bands_{name}" / "bands.json").read_text())["energies_eV"]))
    assert energies[0].shape[1] == 20
    np.testing.assert_allclose(energies[1], energies[0], rtol=0, atol=1e-10)
    # and the v1 folder is the reference of a comparison against the legacy one
    assert eval_main(["bands", "--hamiltonian", str(tmp_path / "legacy"), "--reference", str(tmp_path / "v1"),
                      "--out", str(tmp_path / "cmp"), "--n-electrons", "8", "--npoints", "10", "--kspacing", "0.5"]) == 0
    errs = json.loads((tmp_path / "cmp" / "bands.json").read_text())["band_errors"]
    assert errs["max_abs_meV"] < 1e-6


def test_v1_poscar_in_direct_coordinates_with_scale_reads_the_same(tio, tmp_path):
    """POSCARs from other writers: fractional coordinates, a scale factor, species in another order."""
    st, _ = tio
    flipped = permuted(st, np.array([1, 0]))  # O first
    write_deeph(flipped, tmp_path / "v1", layout="v1")
    lines = (tmp_path / "v1" / "POSCAR").read_text().splitlines()
    assert lines[5] == "O Ti"
    frac = flipped.positions @ np.linalg.inv(flipped.cell)
    lines[1] = "2.0"
    lines[2:5] = ["  ".join(repr(float(x) / 2) for x in row) for row in flipped.cell]
    lines[7] = "Direct"
    lines[8:10] = ["  ".join(repr(float(x)) for x in row) for row in frac]
    (tmp_path / "v1" / "POSCAR").write_text("\n".join(lines) + "\n")
    back = read_deeph(tmp_path / "v1")
    np.testing.assert_allclose(back.positions, flipped.positions, atol=1e-12)
    np.testing.assert_allclose(back.cell, flipped.cell, atol=1e-12)
    assert back.numbers.tolist() == [8, 22] and back.orbital_types == [[0, 1, 3], [0, 1, 2]]
    for k, b in flipped.hamiltonians.items():
        np.testing.assert_array_equal(back.hamiltonians[k], b)


# ---------------------------------------------------------------------------------------------------
# bad v1 input: exit 2, one line naming the file and the problem, nothing written


def _edit_h5(path, **datasets):
    with h5py.File(path, "r+") as f:
        for name, value in datasets.items():
            del f[name]
            if value is not None:
                f.create_dataset(name, data=value)


def _read_h5(path):
    with h5py.File(path) as f:
        return {k: f[k][()] for k in f}


def _shift_boundary(d):
    b = d["chunk_boundaries"].copy()
    b[1] += 1
    return {"chunk_boundaries": b}


def _pair_out_of_range(d):
    p = d["atom_pairs"].copy()
    p[3, 4] = 2
    return {"atom_pairs": p}


def _negative_atom(d):
    p = d["atom_pairs"].copy()
    p[0, 3] = -1
    return {"atom_pairs": p}


def _duplicate_pair(d):
    p = d["atom_pairs"].copy()
    same = np.flatnonzero((p[:, 3] == 0) & (p[:, 4] == 0))  # two blocks of one shape
    p[same[1]] = p[same[0]]
    return {"atom_pairs": p}


H5_CASES = {
    "boundaries-vs-shapes": (_shift_boundary, "chunk_shapes gives"),
    "entries-too-short": (lambda d: {"entries": d["entries"][:-3]}, "entries has"),
    "shapes-rows": (lambda d: {"chunk_shapes": d["chunk_shapes"][:-1]}, "chunk_shapes has shape"),
    "pair-out-of-range": (_pair_out_of_range, "outside 0..1"),
    "negative-atom": (_negative_atom, "outside 0..1"),
    "duplicate-pair": (_duplicate_pair, "appears twice"),
    "missing-dataset": (lambda d: {"chunk_boundaries": None}, "no dataset 'chunk_boundaries'"),
    "pairs-not-5-columns": (lambda d: {"atom_pairs": d["atom_pairs"][:, :4]}, "expected (N, 5)"),
    "nan": (lambda d: {"entries": np.where(np.arange(d["entries"].size) == 7, np.nan, d["entries"])}, "NaN"),
}


def _info_edit(**changes):
    def edit(folder):
        p = folder / "info.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), **changes}))
    return edit


def _poscar_edit(line, text):
    def edit(folder):
        p = folder / "POSCAR"
        lines = p.read_text().splitlines()
        lines[line] = text
        p.write_text("\n".join(lines) + "\n")
    return edit


FOLDER_CASES = {
    "orbital-map-vs-blocks": (_info_edit(elements_orbital_map={"Ti": [0, 1], "O": [0, 1, 3]}, orbits_quantity=15),
                              "hamiltonian.h5: chunk", "elements_orbital_map gives"),
    "orbital-map-missing-element": (_info_edit(elements_orbital_map={"Ti": [0, 1, 2]}),
                                    "info.json", "no entry for O"),
    "orbital-map-bad-l": (_info_edit(elements_orbital_map={"Ti": [0, 1, 7], "O": [0, 1, 3]}),
                          "info.json", "shell l"),
    "atoms-quantity": (_info_edit(atoms_quantity=3), "info.json", "atoms_quantity=3"),
    "orbits-quantity": (_info_edit(orbits_quantity=24), "info.json", "orbits_quantity=24"),
    "spinful": (_info_edit(spinful=True), "info.json", "spinful"),
    "poscar-species": (_poscar_edit(5, "1 1"), "POSCAR", "element symbols"),
    "poscar-counts": (_poscar_edit(6, "1 1 1"), "POSCAR", "atom count"),
    "no-overlap": (lambda d: (d / "overlap.h5").unlink(), "tio", "missing overlap.h5"),
}


@pytest.fixture
def v1_folder(tio, tmp_path):
    write_deeph(tio[0], tmp_path / "in" / "tio", layout="v1")
    return tmp_path / "in" / "tio"


def _pack_fails(folder, tmp_path, capsys, *needles):
    out = tmp_path / "packed"
    assert prep_main(["pack", str(folder), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in"]
    return err


@pytest.mark.parametrize("case", list(H5_CASES), ids=list(H5_CASES))
@pytest.mark.parametrize("name", ["hamiltonian.h5", "overlap.h5"])
def test_bad_chunked_file_exits_2_naming_file_and_problem(v1_folder, tmp_path, capsys, case, name):
    edit, needle = H5_CASES[case]
    _edit_h5(v1_folder / name, **edit(_read_h5(v1_folder / name)))
    _pack_fails(v1_folder, tmp_path, capsys, f"{v1_folder / name}:", needle)


@pytest.mark.parametrize("case", list(FOLDER_CASES), ids=list(FOLDER_CASES))
def test_bad_v1_folder_exits_2_naming_file_and_problem(v1_folder, tmp_path, capsys, case):
    edit, where, needle = FOLDER_CASES[case]
    edit(v1_folder)
    err = _pack_fails(v1_folder, tmp_path, capsys, where, needle)
    assert "Traceback" not in err


def test_convert_bad_input_leaves_nothing(v1_folder, tio, tmp_path, capsys):
    write_deeph(tio[0], tmp_path / "in" / "good", layout="v1")
    _edit_h5(v1_folder / "overlap.h5", **_pair_out_of_range(_read_h5(v1_folder / "overlap.h5")))
    assert prep_main(["convert", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--to", "legacy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlap.h5: chunk 3" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    shutil.rmtree(tmp_path / "in")


def test_layout_is_detected_and_a_bare_poscar_is_not_a_deeph_folder(tio, tmp_path):
    from data_prep.deeph_format import DeepHFormatError
    from data_prep.lmdb_dataset import find_structure_folders

    write_deeph(tio[0], tmp_path / "data" / "a")
    write_deeph(tio[0], tmp_path / "data" / "b", layout="v1")
    (tmp_path / "data" / "structures").mkdir()
    shutil.copy(tmp_path / "data" / "b" / "POSCAR", tmp_path / "data" / "structures" / "POSCAR")
    assert [deeph_layout(tmp_path / "data" / n) for n in "ab"] == ["legacy", "v1"]
    assert find_structure_folders([tmp_path / "data"]) == [(tmp_path / "data" / n).resolve() for n in "ab"]
    with pytest.raises(DeepHFormatError, match="structures: not a DeepH folder"):
        read_deeph(tmp_path / "data" / "structures")
    (tmp_path / "data" / "b" / "info.json").unlink()  # still v1 (it has hamiltonian.h5): the missing file is named
    with pytest.raises(DeepHFormatError, match="b: missing info.json"):
        read_deeph(tmp_path / "data" / "b")
