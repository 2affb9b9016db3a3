"""Band-structure errors of a predicted Hamiltonian against a reference, in meV.

Convention (documented in docs/evaluation.md):
* Both band sets are computed at the same k-points and compared band index by band index (sorted
  eigenvalues; no band-crossing disentanglement, so the comparison is strict near degeneracies).
* Alignment ``"fermi"`` (default): each set is shifted by its own Fermi level (VBM for insulators),
  computed the same way from the same electron count; ``"mu"``: the predicted bands are moved rigidly by
  ``mu_shift`` = μ_ref - μ_pred (μ = <H,S>/<S,S>, ``deeph_eval.gauge.mu_offset``), i.e. compared after giving
  the prediction the reference's energy zero (the way to compare a standardised model without trusting its
  Fermi level); ``"none"``: absolute energies (a raw DeepH model predicts absolute H, so this also tests the
  energy zero; meaningless for a standardised model).
* Only entries whose *reference* energy lies within ``window`` eV of the reference Fermi level count.
"""

from __future__ import annotations

import numpy as np


def band_errors(pred, ref, ef_pred: float, ef_ref: float, *, window: float = 2.0, align: str = "fermi",
                mu_shift: float | None = None) -> dict:
    pred, ref = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    if pred.shape != ref.shape:
        raise ValueError(f"band arrays differ in shape: predicted {pred.shape} vs reference {ref.shape}")
    if align == "fermi":
        p, r = pred - ef_pred, ref - ef_ref
    elif align == "mu":
        if mu_shift is None:
            raise ValueError("align='mu' needs mu_shift = mu_ref - mu_pred")
        p, r = pred + mu_shift - ef_ref, ref - ef_ref
    elif align == "none":
        p, r = pred - ef_ref, ref - ef_ref
    else:
        raise ValueError(f"align must be 'fermi', 'mu' or 'none', got {align!r}")
    sel = (np.abs(r) <= window) & np.isfinite(p) & np.isfinite(r)  # NaN: level not computed (sparse)
    if not sel.any():
        raise ValueError(f"no reference band lies within ±{window} eV of the Fermi level")
    err = (p - r)[sel] * 1000.0
    extra = {"mu_shift_meV": float(mu_shift * 1000.0)} if align == "mu" else {}
    return {
        **extra,
        "align": align, "window_eV": window, "n_values": int(sel.sum()),
        "n_bands_in_window": int(sel.any(axis=0).sum()),
        "mae_meV": float(np.abs(err).mean()), "rmse_meV": float(np.sqrt((err**2).mean())),
        "max_abs_meV": float(np.abs(err).max()), "mean_signed_meV": float(err.mean()),
        "fermi_shift_meV": float((ef_pred - ef_ref) * 1000.0),
    }
