"""Predicted folders hold H and S on one pair set: H is zero beyond the model cutoff; bands and block errors
are those of the prediction itself."""

import json

import numpy as np
import pytest

from data_prep.deeph_format import read_deeph, write_deeph
from data_prep.graph import neighbor_graph
from data_prep.kspace import band_energies
from data_prep.pair_sets import on_one_pair_set
from deeph_eval.cli import main
from deeph_eval.truncation import model_blocks

CUTOFF = 4.0  # Å: Si nearest neighbours (2.35 Å) and second neighbours (3.84 Å); S reaches much further


@pytest.fixture(scope="module")
def predicted(si_integrals):
    """Si integrals with H cut at CUTOFF and perturbed, as `deeph-eval predict` would hold them in memory."""
    st, _ = si_integrals
    ei, shift, _ = neighbor_graph(st.cell, st.positions, st.pbc, CUTOFF)
    keys = {(0, 0, 0, a, a) for a in range(st.n_atoms)} | {(*map(int, r), int(i), int(j))
                                                            for (i, j), r in zip(ei.T, shift)}
    h = {k: st.hamiltonians[k] + 0.01 * st.overlaps[k] for k in keys}
    return st.__class__(**{**st.__dict__, "hamiltonians": h, "info": {**st.info, "model_cutoff": CUTOFF}})


def test_h_is_completed_with_zeros_on_the_overlap_pairs(predicted):
    st, n_h, n_s = on_one_pair_set(predicted)
    assert set(st.hamiltonians) == set(st.overlaps) == set(predicted.overlaps)
    assert n_h == len(predicted.overlaps) - len(predicted.hamiltonians) > 0 and n_s == 0
    assert all(not st.hamiltonians[k].any() for k in set(st.overlaps) - set(predicted.hamiltonians))
    assert all(st.overlaps[k] is predicted.overlaps[k] for k in st.overlaps)  # S untouched
    kpts = np.array([[0, 0, 0], [0.5, 0, 0.5], [0.1, 0.2, 0.3]])
    n_orb = st.n_orbitals()
    np.testing.assert_allclose(band_energies(st.hamiltonians, st.overlaps, n_orb, kpts),
                               band_energies(predicted.hamiltonians, predicted.overlaps, n_orb, kpts), atol=1e-12)
    # the other way round: S lacking pairs that H has gets zero S blocks
    short_s = predicted.__class__(**{**predicted.__dict__, "hamiltonians": predicted.overlaps,
                                     "overlaps": predicted.hamiltonians})
    st2, n_h2, n_s2 = on_one_pair_set(short_s)
    assert (n_h2, n_s2) == (0, n_h) and set(st2.overlaps) == set(st2.hamiltonians)


@pytest.mark.parametrize("layout", ["legacy", "v1"])
def test_compare_counts_only_the_blocks_the_model_predicted(predicted, si_integrals, tmp_path, layout):
    ref, _ = si_integrals
    write_deeph(ref, tmp_path / "ref", layout=layout)
    write_deeph(on_one_pair_set(predicted)[0], tmp_path / "pred", layout=layout)
    folder = read_deeph(tmp_path / "pred")
    assert set(folder.hamiltonians) == set(folder.overlaps)
    assert set(model_blocks(folder)) == set(predicted.hamiltonians)
    assert main(["compare", "--predicted", str(tmp_path / "pred"), "--reference", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    errs = np.concatenate([np.abs(predicted.hamiltonians[k] - ref.hamiltonians[k]).ravel()
                           for k in predicted.hamiltonians])
    assert report["mae_meV"] == pytest.approx(1000 * errs.mean(), rel=1e-12)
