"""The energy zero of predicted Hamiltonians in evaluation: what gauge a prediction is in, re-adding a shift,
aligning band comparisons by μ, and warnings when a comparison would mix gauges.

A model trained with ``model.target_gauge=standardised`` predicts H - μ·S (<H,S> = 0 per structure over the
blocks it predicts, ``data_prep.gauge``); one trained with ``atoms`` predicts H in the zero that aligns its
on-site blocks with its isolated atoms (the checkpoint holds those atoms); one trained with ``huckel`` predicts
H - H0, to which ``as_trained`` adds H0 back (its zero: <H - H0, S> = 0). ``model_hamiltonian`` writes both
standardised (``written_gauge``). Its bands are DFT's shifted rigidly
by -μ: compare them after aligning the Fermi levels, or after restoring the reference's μ; block errors against
a raw DFT H are only meaningful once the reference is brought to the same zero (or gauge-invariant).
"""

from __future__ import annotations

import warnings

from data_prep.deeph_format import Blocks, DeepHStructure
from data_prep.gauge import ATOM_GAUGES, gauge_mu, in_gauge, shifted, standardised

CONVENTION = ("mu_eV = <H,S>/<S,S> of the written H over its blocks; H + c*S has the same physics with every band "
              "moved up by c eV. A standardised model predicts H with mu = 0 (the per-structure energy zero of DFT "
              "removed): align bands by the Fermi level, or restore a DFT mu with deeph-eval predict --reference "
              "DIR / --shift-ev C")


class GaugeWarning(UserWarning):
    """A comparison mixes a standardised Hamiltonian with a raw one."""


def folder_gauge(st: DeepHStructure) -> str:
    """"standardised" / "atoms" for an unshifted prediction of such a model (info.json "gauge"), else "raw"."""
    return (st.info.get("gauge") or {}).get("written", "raw")


def gauge_info(model_gauge: str, h: Blocks, s: Blocks | None, shift_eV: float = 0.0,
               aligned_to: str | None = None) -> dict:
    """info.json "gauge" of a predicted folder: the gauge the model learned and the one written."""
    written = written_gauge(model_gauge) if shift_eV == 0.0 else "shifted"
    info = {"model_target_gauge": model_gauge, "written": written, "shift_eV": float(shift_eV),
            "aligned_to": aligned_to, "convention": CONVENTION}
    if s is not None:
        info["mu_eV"] = gauge_mu(h, s)
    return info


def as_trained(model_gauge: str, h: Blocks, s: Blocks, reference: Blocks | None = None) -> Blocks:
    """A network's output as the H its model predicts, in the gauge it learned: a standardised model's blocks
    projected onto <H,S> = 0 (its own μ removed, ``models.gauge.project_standardised``, as in training and
    validation), an atoms model's onto its atoms' zero, a huckel model's residual plus H0 with μ_h = 0
    (``reference``: ``LoadedModel.reference_blocks``); raw unchanged."""
    if model_gauge == "huckel":
        h = _plus_h0(h, reference)
    return in_gauge(model_gauge, h, s, reference=reference)[0]


def _plus_h0(h: Blocks, reference: Blocks | None) -> Blocks:
    """A huckel network's residual with its H0 added back."""
    if reference is None:
        raise ValueError("a huckel-gauge prediction needs its H0 (LoadedModel.reference_blocks)")
    return {k: h[k] + reference[k] if k in reference else h[k] for k in h}


def model_hamiltonian(loaded, numbers, h: Blocks, s: Blocks) -> Blocks:
    """The H that checkpoint ``loaded`` (``LoadedModel``) predicts from its network output ``h`` on a structure of
    atomic ``numbers`` with overlaps ``s`` (``as_trained``), in the zero it is written in (``written_gauge``):
    an atoms or huckel model's H is standardised over its blocks. Which zero a structure's H is given in is
    physics-free for the blocks themselves, but bands are computed with S beyond the cutoff, where H is cut:
    the least-squares zero leaves the smallest cut (s-block compounds at 9 Å: p90 15 meV, against 144 meV in
    the huckel zero; ``bench/cutoff_floor.py --gauge``)."""
    gauge = loaded.target_gauge
    if gauge == "raw":
        return h
    if gauge == "huckel":
        h = _plus_h0(h, loaded.reference_blocks(numbers, s, h))
    return standardised(h, s)[0]  # for every non-raw gauge the same blocks as as_trained's, rigidly shifted


def written_gauge(model_gauge: str) -> str:
    """The energy zero ``model_hamiltonian`` writes a model's H in: raw for a raw model, else standardised."""
    return "raw" if model_gauge == "raw" else "standardised"


def restore_shift(st: DeepHStructure, model_gauge: str, *, shift_eV: float | None = None,
                  reference: DeepHStructure | None = None) -> DeepHStructure:
    """Predicted ``st`` with H -> H + c·S: c = ``shift_eV``, or c = μ_ref - μ_pred so that the written H has the
    reference's μ over the predicted blocks (``reference``: DFT H, S of the same structure); info "gauge" set."""
    if st.overlaps is None:
        raise ValueError(f"{st.source}: no S(R): cannot shift H by c*S")
    c, where = 0.0, None
    if reference is not None:
        if reference.hamiltonians is None or reference.overlaps is None:
            raise ValueError(f"{reference.source}: --reference needs the DFT H and S (hamiltonians.h5, overlaps.h5)")
        c, where = mu_offset(st.hamiltonians, reference.hamiltonians, reference.overlaps), reference.source
    elif shift_eV is not None:
        c = float(shift_eV)
    if c != 0.0:
        st.hamiltonians = shifted(st.hamiltonians, st.overlaps, c)
    st.info["gauge"] = gauge_info(model_gauge, st.hamiltonians, st.overlaps, c, where)
    return st


def mu_offset(pred: Blocks, ref: Blocks, s: Blocks) -> float:
    """μ_ref - μ_pred over the predicted blocks that the reference has (S of the reference): adding this
    times S to the prediction gives it the reference's energy zero."""
    keys = [k for k in pred if k in ref]
    return gauge_mu(ref, s, keys) - gauge_mu(pred, s, keys)


def reference_in_gauge(model_gauge: str, pred: Blocks, ref: Blocks, s: Blocks | None, where: str) -> tuple[Blocks, dict]:
    """The reference H in the prediction's gauge (standardised over the predicted blocks, or for an atoms- or
    huckel-gauge prediction shifted by μ_a(ref) - μ_a(pred) = μ(ref) - μ(pred) over them: the reference cancels) and the
    per-structure μ's {"mu_reference_eV", "mu_predicted_eV"} (empty without S)."""
    if s is None:
        if model_gauge != "raw":
            raise ValueError(f"{where}: the model predicts {model_gauge} H (a per-structure mu*S removed) but the "
                             "reference has no overlaps: its raw H cannot be brought to the same gauge")
        return ref, {}
    keys = [k for k in pred if k in ref]
    mus = {"mu_reference_eV": gauge_mu(ref, s, keys), "mu_predicted_eV": gauge_mu(pred, s, keys)}
    if model_gauge == "standardised":
        ref, _ = standardised({k: ref[k] for k in keys}, s)
    elif model_gauge in ATOM_GAUGES:
        ref = shifted({k: ref[k] for k in keys}, s, -(mus["mu_reference_eV"] - mus["mu_predicted_eV"]))
    return ref, mus


def warn_if_mixed(pred_gauge: str, ref_gauge: str, align: str, what: str) -> None:
    """Absolute band energies (``align="none"``) of a standardised prediction against raw DFT differ by μ."""
    if pred_gauge != ref_gauge and align == "none":
        warnings.warn(f"{what}: comparing a {pred_gauge} Hamiltonian with a {ref_gauge} one at absolute energies "
                      "(--align none) mixes gauges: every band is off by the structure's mu = <H,S>/<S,S>. "
                      "Use --align fermi or --align mu", GaugeWarning, stacklevel=2)
