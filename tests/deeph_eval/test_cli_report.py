"""deeph-eval commands end to end on real integral data; block-error report; clear errors on bad input."""

import json
import os

import numpy as np
import pytest
from ase.build import bulk

from data_prep.deeph_format import write_deeph
from deeph_eval.checks import GeometryError, check_geometry
from deeph_eval.cli import main
from deeph_eval.report import BlockErrorReport

SHIFT = 0.25  # eV: H' = H + SHIFT·S moves every band by exactly SHIFT


def _shifted(st):
    return st.__class__(**{**st.__dict__, "hamiltonians": {k: st.hamiltonians[k] + SHIFT * st.overlaps[k] for k in st.overlaps}})


@pytest.fixture(scope="module")
def folders(si_integrals, tmp_path_factory):
    st, _ = si_integrals
    root = tmp_path_factory.mktemp("deeph")
    ref = write_deeph(st, root / "ref" / "si")
    pred = write_deeph(_shifted(st), root / "pred" / "si")
    return ref, pred


def test_report_matches_an_independent_count(si_integrals):
    st, _ = si_integrals
    rep = BlockErrorReport()
    rep.add_structure("si", st.numbers, _shifted(st).hamiltonians, st.hamiltonians)
    rep.skip("fe", "element Fe not in the model's basis")
    out = rep.to_json()
    all_s = np.concatenate([b.ravel() for b in st.overlaps.values()])
    onsite = np.concatenate([b.ravel() for k, b in st.overlaps.items() if k[:3] == (0, 0, 0) and k[3] == k[4]])
    assert out["mae_meV"] == pytest.approx(1000 * SHIFT * np.abs(all_s).mean(), rel=1e-9)
    assert out["per_element"]["Si"]["mae_meV"] == pytest.approx(1000 * SHIFT * np.abs(onsite).mean(), rel=1e-9)
    assert set(out["per_element_pair"]) == {"Si-Si"}
    assert out["per_element_all_blocks"]["Si"]["mae_meV"] == pytest.approx(out["mae_meV"], rel=1e-12)
    assert [s["status"] for s in out["structures"]] == ["ok", "skipped"] and out["n_skipped"] == 1
    assert "Si" in rep.table() and "skipped fe" in rep.table()


def test_first_shell_is_the_four_bonds_of_each_diamond_atom(si_integrals):
    st, _ = si_integrals
    rep = BlockErrorReport()
    rep.add_structure("si", st.numbers, _shifted(st).hamiltonians, st.hamiltonians, positions=st.positions,
                      cell=st.cell)
    out = rep.to_json()
    bond = {k: np.linalg.norm(st.positions[k[4]] + np.array(k[:3]) @ st.cell - st.positions[k[3]]) for k in st.overlaps}
    shell = [k for k, d in bond.items() if 0 < d < 2.5]  # Si-Si 2.35 Å; the second shell is at 3.84 Å
    assert len(shell) == 2 * 4
    ds = np.concatenate([SHIFT * st.overlaps[k].ravel() for k in shell])
    href = np.concatenate([st.hamiltonians[k].ravel() for k in shell])
    assert out["first_shell"]["n_values"] == ds.size
    assert out["first_shell"]["mae_meV"] == pytest.approx(1000 * np.abs(ds).mean(), rel=1e-9)
    assert out["first_shell"]["relative"] == pytest.approx(np.abs(ds).sum() / np.abs(href).sum(), rel=1e-9)
    assert out["structures"][0]["first_shell"]["mae_meV"] == pytest.approx(out["first_shell"]["mae_meV"])
    assert "first-shell hoppings" in rep.table()


def test_bands_cli_with_reference(folders, tmp_path, capsys):
    ref, pred = folders
    out = tmp_path / "bands"
    rc = main(["bands", "--hamiltonian", str(pred), "--reference", str(ref), "--out", str(out), "--n-electrons", "8",
               "--npoints", "40", "--kspacing", "0.4", "--align", "none", "--window", "3"])
    assert rc == 0
    data = json.loads((out / "bands.json").read_text())
    assert data["labels"][0] == "Γ" and len(data["energies_eV"]) == 40 == len(data["kpts_frac"])
    assert data["band_errors"]["mae_meV"] == pytest.approx(1000 * SHIFT, abs=1e-3)
    assert os.path.getsize(out / "bands.png") > 20_000
    assert "band error" in capsys.readouterr().out


def test_dos_cli(folders, tmp_path):
    ref, _ = folders
    rc = main(["dos", "--hamiltonian", str(ref), "--out", str(tmp_path), "--n-electrons", "8", "--kspacing", "0.4"])
    assert rc == 0
    table = np.loadtxt(tmp_path / "dos.dat")
    assert table.shape[1] == 2 and table[:, 1].max() > 0
    assert os.path.getsize(tmp_path / "dos.png") > 10_000


def test_compare_cli_reports_and_skips(folders, tmp_path, si_integrals):
    ref, pred = folders
    other = write_deeph(si_integrals[0].__class__(**{**si_integrals[0].__dict__, "numbers": np.array([6, 6])}),
                        tmp_path / "c2")
    rc = main(["compare", "--predicted", str(pred), str(other), "--reference", str(ref), str(ref),
               "--out", str(tmp_path / "report.json"), "--bands", "--n-electrons", "8", "--window", "3"])
    assert rc == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["mae_meV"] > 0 and rep["n_structures"] == 1 and rep["structures"][1]["status"] == "skipped"
    assert rep["structures"][0]["band_errors"]["max_abs_meV"] < 1e-3  # aligned on E_F: a pure shift vanishes
    assert (tmp_path / "report.csv").read_text().count("\n") == 3


def test_bad_inputs_give_one_clear_line(folders, tmp_path, capsys):
    ref, _ = folders
    broken = tmp_path / "no_overlap"
    broken.mkdir()
    for f in ref.iterdir():
        if f.name != "overlaps.h5":
            (broken / f.name).write_bytes(f.read_bytes())
    assert main(["bands", "--hamiltonian", str(broken), "--out", str(tmp_path / "o"), "--n-electrons", "8"]) == 2
    assert "missing overlaps.h5" in capsys.readouterr().err
    no_count = tmp_path / "no_count"
    no_count.mkdir()
    for f in ref.iterdir():
        (no_count / f.name).write_bytes(f.read_bytes())
    info = json.loads((no_count / "info.json").read_text())
    del info["n_electrons"]
    (no_count / "info.json").write_text(json.dumps(info))
    try:
        from data_prep.dft import valence_electrons  # the DFT runner's pseudopotential table fills the gap
    except ImportError:
        assert main(["dos", "--hamiltonian", str(no_count), "--out", str(tmp_path / "o")]) == 2
        assert "--n-electrons" in capsys.readouterr().err
    else:
        assert main(["dos", "--hamiltonian", str(no_count), "--out", str(tmp_path / "d"), "--kspacing", "0.5"]) == 0
        n_e = json.loads((tmp_path / "d" / "dos.json").read_text())["filling"]["n_electrons"]
        assert n_e == valence_electrons(bulk("Si", "diamond", a=5.43)) == 8
    assert main(["bands", "--hamiltonian", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_geometry_in_bohr_or_fractional_is_rejected():
    si = bulk("Si", "diamond", a=5.43)
    check_geometry(si.cell[:], si.positions, si.numbers, si.pbc, "Si")
    with pytest.raises(GeometryError, match="Bohr"):
        check_geometry(si.cell[:] * 1.8897, si.positions * 1.8897, si.numbers, si.pbc, "Si.cif")
    with pytest.raises(GeometryError, match="fractional"):
        check_geometry(si.cell[:], si.get_scaled_positions(), si.numbers, si.pbc, "POSCAR")
