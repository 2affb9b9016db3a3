"""The energy zero in evaluation, on real shipped DFT folders: H + c·S has DFT's bands shifted rigidly by c (and
zero band error after aligning by the Fermi level or by μ); `deeph-eval test` reports gauge-invariant MAEs and
each structure's μ, standardises the reference for a standardised checkpoint; `predict` states and restores μ."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from data_prep.basis import BasisTable
from data_prep.deeph_format import DeepHStructure, read_deeph, write_deeph
from data_prep.embedded import quickstart_path
from data_prep.gauge import gauge_mu, shifted
from deeph_eval.band_errors import band_errors
from deeph_eval.bands import common_bands, compute_bands
from deeph_eval.cli import main
from deeph_eval.gauge import GaugeWarning, mu_offset, warn_if_mixed
from deeph_eval.truncation import model_blocks
from deeph_lightning.module import HamiltonianModule

from model_structures import TINY

FOLDERS = ("Si2_diamond_s11_00013", "CSi_zincblende_s11_00006")
CUTOFF = 4.0
C = 0.83  # eV


def moved(st: DeepHStructure, c: float = C) -> DeepHStructure:
    return DeepHStructure(**{**st.__dict__, "hamiltonians": shifted(st.hamiltonians, st.overlaps, c)})


def test_bands_of_h_plus_cs_are_dft_bands_shifted_rigidly():
    st = read_deeph(quickstart_path() / FOLDERS[0])
    ref = compute_bands(st, 8, npoints=12, kspacing=0.5)
    res = compute_bands(moved(st), 8, kpath=ref.kpath, kspacing=0.5)
    a, b = common_bands(res, ref)
    np.testing.assert_allclose(a - b, C, atol=1e-8)
    assert res.filling.fermi_level - ref.filling.fermi_level == pytest.approx(C, abs=1e-8)
    h_moved = moved(st).hamiltonians
    shift = mu_offset(h_moved, st.hamiltonians, st.overlaps)
    assert shift == pytest.approx(-C, abs=1e-12)
    assert gauge_mu(h_moved, st.overlaps) - gauge_mu(st.hamiltonians, st.overlaps) == pytest.approx(C)
    for align, kw in (("fermi", {}), ("mu", {"mu_shift": shift})):
        errs = band_errors(a, b, res.filling.fermi_level, ref.filling.fermi_level, align=align, **kw)
        assert errs["max_abs_meV"] < 1e-5, align
    assert band_errors(a, b, res.filling.fermi_level, ref.filling.fermi_level, align="none")["mae_meV"] == pytest.approx(
        C * 1000, rel=1e-6)
    with pytest.warns(GaugeWarning, match="mixes gauges"):
        warn_if_mixed("standardised", "raw", "none", "test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_mixed("standardised", "raw", "fermi", "test")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An (untrained) standardised checkpoint for the shipped C/Si basis, written by the training module."""
    structures = [read_deeph(quickstart_path() / name) for name in FOLDERS]
    basis = BasisTable.from_mapping({int(z): list(ls) for st in structures for z, ls in zip(st.numbers, st.orbital_types)})
    torch.manual_seed(0)
    m = HamiltonianModule({"_target_": "deeph_lightning.models.deeph2.DeepH2", **TINY}, basis, CUTOFF, ema_decay=None,
                          target_gauge="standardised")
    ckpt = {"state_dict": m.state_dict()}
    m.on_save_checkpoint(ckpt)
    path = tmp_path_factory.mktemp("ckpt") / "std.ckpt"
    torch.save(ckpt, path)
    return path


def test_test_report_has_gauge_invariant_metrics_and_mu(checkpoint, tmp_path):
    raw, shifted_dir = tmp_path / "raw", tmp_path / "shifted"
    for name in FOLDERS:
        st = read_deeph(quickstart_path() / name)
        write_deeph(st, raw / name)
        write_deeph(moved(st), shifted_dir / name)
    reports = []
    for data in (raw, shifted_dir):
        assert main(["test", "--ckpt", str(checkpoint), "--data", str(data), "--out", str(data / "report.json")]) == 0
        reports.append(json.loads((data / "report.json").read_text()))
    a, b = reports
    assert a["target_gauge"] == "standardised" and a["n_structures"] == 2
    for key in ("onsite", "hopping"):
        assert a["gauge_invariant"][key]["mae_meV"] == pytest.approx(b["gauge_invariant"][key]["mae_meV"], rel=1e-9)
        assert a[key]["mae_meV"] == pytest.approx(b[key]["mae_meV"], rel=1e-9)  # vs the standardised reference
        # a standardised prediction is projected onto <H,S> = 0 (its own μ removed): its error is gauge-invariant
        assert a[key]["mae_meV"] == pytest.approx(a["gauge_invariant"][key]["mae_meV"], rel=1e-9)
    for sa, sb in zip(a["structures"], b["structures"]):
        assert sb["mu_reference_eV"] - sa["mu_reference_eV"] == pytest.approx(C, abs=1e-9)
        assert sa["mu_predicted_eV"] == pytest.approx(0.0, abs=1e-9)
        assert sa["gauge_invariant_mae_meV"] == pytest.approx(sa["mae_meV"], rel=1e-9)
    assert "gauge_invariant_mae_meV" in (raw / "report.csv").read_text().splitlines()[0]


def test_predict_states_the_gauge_and_restores_a_reference_mu(checkpoint, tmp_path, capsys):
    ref = quickstart_path() / FOLDERS[0]
    out = tmp_path / "pred"
    assert main(["predict", "--ckpt", str(checkpoint), "--structure", str(ref), "--out", str(out),
                 "--reference", str(ref)]) == 0
    info = json.loads((out / "info.json").read_text())["gauge"]
    assert info["model_target_gauge"] == "standardised" and info["written"] == "shifted"
    st, dft = read_deeph(out), read_deeph(ref)
    keys = list(model_blocks(st))  # the predicted blocks (the folder also holds zero H on S's longer pairs)
    assert gauge_mu(st.hamiltonians, dft.overlaps, keys) == pytest.approx(gauge_mu(dft.hamiltonians, dft.overlaps, keys))
    assert info["mu_eV"] == pytest.approx(gauge_mu(dft.hamiltonians, dft.overlaps, keys))
    assert "the mu of" in capsys.readouterr().out
    plain = tmp_path / "plain"
    assert main(["predict", "--ckpt", str(checkpoint), "--structure", str(ref), "--out", str(plain),
                 "--shift-ev", "1.5"]) == 0
    g = json.loads((plain / "info.json").read_text())["gauge"]
    assert g["shift_eV"] == 1.5 and g["mu_eV"] - info["mu_eV"] + (info["shift_eV"] - 1.5) == pytest.approx(0, abs=1e-9)
    assert g["mu_eV"] == pytest.approx(1.5, abs=1e-9)  # the prediction itself has mu = 0 (standardised), then + 1.5


@pytest.mark.parametrize("gauge", ["atoms", "huckel"])
def test_atom_reference_checkpoint_in_test_predict_and_compare(gauge, tmp_path):
    """An atoms- or huckel-gauge checkpoint: `test` is blind to each structure's DFT zero, `predict` writes H
    aligned to the checkpoint's reference (μ = <H - ref, S>/<S,S> = 0; huckel: the network's residual plus H0
    built from the checkpoint's atoms and the structure's S), and `compare` of that folder reproduces `test`'s
    errors."""
    from data_prep.dft.atom_reference import onsite_table
    from data_prep.gauge import atom_blocks, huckel_blocks, in_gauge

    structures = [read_deeph(quickstart_path() / name) for name in FOLDERS]
    basis = BasisTable.from_mapping({int(z): list(ls) for st in structures for z, ls in zip(st.numbers, st.orbital_types)})
    table = onsite_table(structures[0].info["dft"], basis.elements)
    torch.manual_seed(0)
    m = HamiltonianModule({"_target_": "deeph_lightning.models.deeph2.DeepH2", **TINY}, basis, CUTOFF, ema_decay=None,
                          target_gauge=gauge, atom_onsite={str(z): b.tolist() for z, b in table.items()})
    ckpt_path = tmp_path / f"{gauge}.ckpt"
    ckpt = {"state_dict": m.state_dict()}
    m.on_save_checkpoint(ckpt)
    torch.save(ckpt, ckpt_path)

    reports = []
    for shift in (0.0, C):
        data = tmp_path / f"data{shift}"
        for st in structures:
            write_deeph(moved(st, shift), data / st.source.split("/")[-1].split(" ")[0])
        assert main(["test", "--ckpt", str(ckpt_path), "--data", str(data), "--out", str(data / "r.json")]) == 0
        reports.append(json.loads((data / "r.json").read_text()))
    a, b = reports
    assert a["target_gauge"] == gauge and a["n_structures"] == 2
    for key in ("onsite", "hopping"):
        assert a[key]["mae_meV"] == pytest.approx(b[key]["mae_meV"], rel=1e-9)

    out = tmp_path / "pred"
    ref = quickstart_path() / FOLDERS[0]
    assert main(["predict", "--ckpt", str(ckpt_path), "--structure", str(ref), "--out", str(out)]) == 0
    pred = read_deeph(out)
    assert json.loads((out / "info.json").read_text())["gauge"]["written"] == "standardised"
    keys = list(model_blocks(pred))  # the predicted blocks (the folder also holds zero H on S's longer pairs)
    assert gauge_mu(pred.hamiltonians, pred.overlaps, keys) == pytest.approx(0.0, abs=1e-6)
    # written standardised: the same H as the model's own zero (<H - reference, S> = 0) but for a rigid shift
    reference = (atom_blocks(pred.numbers, table) if gauge == "atoms"
                 else huckel_blocks(pred.numbers, table, pred.overlaps, keys))
    own_zero = in_gauge(gauge, pred.hamiltonians, pred.overlaps, keys, reference=reference)[0]
    c = gauge_mu(own_zero, pred.overlaps, keys)
    assert c != pytest.approx(0.0, abs=1e-3)
    assert max(np.abs(own_zero[k] - c * pred.overlaps[k] - pred.hamiltonians[k]).max() for k in keys) < 1e-9
    assert main(["compare", "--predicted", str(out), "--reference", str(ref), "--out", str(tmp_path / "c.json")]) == 0
    compared = json.loads((tmp_path / "c.json").read_text())
    tested = next(s for s in a["structures"] if s["id"] == FOLDERS[0])
    assert compared["structures"][0]["mae_meV"] == pytest.approx(tested["mae_meV"], rel=1e-4)
