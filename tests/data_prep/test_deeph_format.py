"""DeepH-format reading/writing on real DFT output, and clear errors for every kind of bad folder."""

import json
import shutil

import h5py
import numpy as np
import pytest

from data_prep.deeph_format import DeepHFormatError, check_hermitian, read_deeph, write_deeph


@pytest.fixture
def si_copy(dft_folders, tmp_path):
    dst = tmp_path / "si"
    shutil.copytree(dft_folders[0], dst)
    return dst


def test_reads_real_dft_folder(dft_folders):
    st = read_deeph(dft_folders[0])
    assert st.n_atoms == len(st.orbital_types) == len(st.positions)
    assert st.cell.shape == (3, 3) and st.fermi_level is not None
    n = st.n_orbitals()
    for (rx, ry, rz, i, j), blk in st.hamiltonians.items():
        assert blk.shape == (n[i], n[j])
    assert set(st.hamiltonians) == set(st.overlaps)
    assert check_hermitian(st.hamiltonians, "H") < 1e-8
    np.testing.assert_allclose(st.overlaps[(0, 0, 0, 0, 0)].diagonal(), 1.0, atol=1e-6)  # normalised orbitals


def test_write_read_round_trip_is_exact(dft_folders, tmp_path):
    st = read_deeph(dft_folders[0])
    write_deeph(st, tmp_path / "copy")
    back = read_deeph(tmp_path / "copy")
    np.testing.assert_array_equal(back.cell, st.cell)
    np.testing.assert_array_equal(back.positions, st.positions)
    np.testing.assert_array_equal(back.numbers, st.numbers)
    assert back.orbital_types == st.orbital_types and back.fermi_level == st.fermi_level
    assert back.hamiltonians.keys() == st.hamiltonians.keys()
    for k, blk in st.hamiltonians.items():
        np.testing.assert_array_equal(back.hamiltonians[k], blk)
        np.testing.assert_array_equal(back.overlaps[k], st.overlaps[k])
    lat = np.loadtxt(tmp_path / "copy" / "lat.dat")
    rlat = np.loadtxt(tmp_path / "copy" / "rlat.dat")
    np.testing.assert_allclose(rlat.T @ lat, 2 * np.pi * np.eye(3), atol=1e-10)  # columns: b_i · a_j = 2π δ_ij
    with pytest.raises(FileExistsError):
        write_deeph(st, tmp_path / "copy")


def test_failed_write_leaves_nothing(dft_folders, tmp_path):
    st = read_deeph(dft_folders[0])
    st.hamiltonians[(0, 0, 0, 0, 0)] = object()  # h5py cannot store this
    with pytest.raises(TypeError):
        write_deeph(st, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _edit_h5(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: (d / "overlaps.h5").unlink(), "missing overlaps.h5"),
        (lambda d: (d / "element.dat").unlink(), "missing element.dat"),
        (lambda d: np.savetxt(d / "site_positions.dat", np.loadtxt(d / "site_positions.dat").T), "site_positions.dat"),
        (lambda d: np.savetxt(d / "lat.dat", np.eye(2)), "3x3"),
        (lambda d: (d / "orbital_types.dat").write_text("0 1\n"), "orbital_types.dat"),
        (lambda d: (d / "info.json").write_text("{not json"), "info.json"),
        (lambda d: (d / "info.json").write_text(json.dumps({"isspinful": True, "fermi_level": 0.0})), "spinful"),
    ],
    ids=["no-overlap", "no-element", "transposed-positions", "bad-lattice", "orbital-lines", "bad-json", "spinful"],
)
def test_bad_folder_gives_clear_error(si_copy, corrupt, message):
    corrupt(si_copy)
    with pytest.raises(DeepHFormatError, match=message) as err:
        read_deeph(si_copy)
    assert str(si_copy) in str(err.value)


def test_bad_blocks_give_clear_errors(si_copy):
    h5 = si_copy / "hamiltonians.h5"

    def reshape_one(f):
        name = next(iter(f.keys()))
        data = f[name][()]
        del f[name]
        f[name] = data[:, :-1]

    _edit_h5(h5, reshape_one)
    with pytest.raises(DeepHFormatError, match=r"has shape .* but orbital_types.dat gives"):
        read_deeph(si_copy)


def test_nan_and_partner_and_hermiticity_errors(dft_folders, tmp_path):
    for case in ("nan", "partner", "hermitian"):
        d = tmp_path / case
        shutil.copytree(dft_folders[0], d)

        def edit(f, case=case):
            name = "[1, 0, 0, 1, 2]" if "[1, 0, 0, 1, 2]" in f else sorted(k for k in f.keys() if k.startswith("[1, 0, 0"))[0]
            if case == "nan":
                data = f[name][()]
                data[0, 0] = np.nan
                del f[name]
                f[name] = data
            elif case == "partner":
                del f[name]
                f.attrs["deleted"] = name
            else:
                data = f[name][()]
                data[0, 0] += 0.01
                del f[name]
                f[name] = data

        _edit_h5(d / "hamiltonians.h5", edit)
        if case == "nan":
            with pytest.raises(DeepHFormatError, match="NaN"):
                read_deeph(d)
            continue
        st = read_deeph(d)
        with pytest.raises(DeepHFormatError, match="no partner" if case == "partner" else "not the transpose"):
            check_hermitian(st.hamiltonians, str(d / "hamiltonians.h5"))


def test_written_folder_is_readable_by_others(dft_folders, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = write_deeph(read_deeph(dft_folders[0]), tmp_path / "shared")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's private 0700
