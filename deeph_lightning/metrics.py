"""Block errors in meV: overall, on-site vs hopping, per element pair (masked to real orbitals only).

``BlockErrorAccumulator`` sums |ΔH| and counts per (Z_i, Z_j) for on-site blocks (Z_i = Z_j) and for
hopping blocks separately, so the per-pair, on-site, hopping and overall MAEs all come from the same
sums and can be reduced across DDP ranks by a plain sum.

Gauge-invariant MAEs (``mae_gauge*``) sit next to the raw ones when the batches carry overlaps: per structure
the least-squares rigid shift c·S of the error (``models.gauge.gauge_free_residuals``) is removed first, so a
model that is right up to the arbitrary energy zero of the structure scores 0.
"""

from __future__ import annotations

import torch

from data_prep.basis import BasisTable, element_symbol
from data_prep.torch_data import block_mask

from .models.gauge import gauge_free_residuals

EV_TO_MEV = 1000.0
KINDS = ("onsite", "hopping", "gauge_onsite", "gauge_hopping")


def block_abs_errors(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block sum of |pred - target| over the mask, and the per-block count of masked entries."""
    err = (pred.double() - target.double()).abs() * mask
    return err.flatten(1).sum(1), mask.flatten(1).sum(1).double()


class BlockErrorAccumulator:
    def __init__(self, basis: BasisTable, device=None):
        self.basis = basis
        self.zmax = max(basis.elements)
        n = self.zmax + 1
        self.sums = {k: torch.zeros(n, n, dtype=torch.float64, device=device) for k in KINDS}
        self.counts = {k: torch.zeros(n, n, dtype=torch.float64, device=device) for k in KINDS}

    def update(self, batch, out: dict) -> None:
        z = batch.atomic_numbers
        ei = batch.edge_index
        pairs = {"onsite": (z, z, block_mask(self.basis, z)), "hopping": (z[ei[0]], z[ei[1]], block_mask(self.basis, z, ei))}
        self._add("onsite", out["h_node"], batch.h_node, *pairs["onsite"])
        self._add("hopping", out["h_edge"], batch.h_edge, *pairs["hopping"])
        if getattr(batch, "s_node", None) is not None and getattr(batch, "s_edge", None) is not None:
            r_node, r_edge, _ = gauge_free_residuals(out, batch, self.basis)
            self._add("gauge_onsite", r_node, torch.zeros_like(r_node), *pairs["onsite"])
            self._add("gauge_hopping", r_edge, torch.zeros_like(r_edge), *pairs["hopping"])

    def _add(self, kind: str, pred, target, zi, zj, mask) -> None:
        n = self.zmax + 1
        s, c = block_abs_errors(pred, target, mask)
        lo, hi = torch.minimum(zi, zj), torch.maximum(zi, zj)
        flat = lo * n + hi
        dev = self.sums[kind].device
        self.sums[kind].view(-1).index_add_(0, flat.to(dev), s.to(dev))
        self.counts[kind].view(-1).index_add_(0, flat.to(dev), c.to(dev))

    def tensors(self) -> torch.Tensor:
        """All sums and counts stacked (2·len(KINDS), n, n): reduce this with a sum across ranks."""
        return torch.stack([self.sums[k] for k in KINDS] + [self.counts[k] for k in KINDS])

    def load_tensors(self, t: torch.Tensor) -> None:
        parts = t.unbind(0)
        self.sums = dict(zip(KINDS, parts[: len(KINDS)]))
        self.counts = dict(zip(KINDS, parts[len(KINDS):]))

    def summary(self, per_pair: bool = True) -> dict[str, float]:
        """MAEs in meV: ``mae_meV``, ``mae_onsite_meV``, ``mae_hopping_meV``, ``mae_meV/<A>-<B>`` and, when the
        data had overlaps, the gauge-invariant ``mae_gauge_meV``, ``mae_gauge_onsite_meV``, ``mae_gauge_hopping_meV``."""
        out = {}
        s_on, s_hop = self.sums["onsite"], self.sums["hopping"]
        c_on, c_hop = self.counts["onsite"], self.counts["hopping"]

        def mae(s, c):
            c = float(c)
            return float(s) / c * EV_TO_MEV if c > 0 else float("nan")

        out["mae_meV"] = mae(s_on.sum() + s_hop.sum(), c_on.sum() + c_hop.sum())
        out["mae_onsite_meV"] = mae(s_on.sum(), c_on.sum())
        out["mae_hopping_meV"] = mae(s_hop.sum(), c_hop.sum())
        g_on, g_hop = self.sums["gauge_onsite"], self.sums["gauge_hopping"]
        n_on, n_hop = self.counts["gauge_onsite"], self.counts["gauge_hopping"]
        if float(n_on.sum() + n_hop.sum()) > 0:
            out["mae_gauge_meV"] = mae(g_on.sum() + g_hop.sum(), n_on.sum() + n_hop.sum())
            out["mae_gauge_onsite_meV"] = mae(g_on.sum(), n_on.sum())
            out["mae_gauge_hopping_meV"] = mae(g_hop.sum(), n_hop.sum())
        if per_pair:
            total_s, total_c = s_on + s_hop, c_on + c_hop
            for a, b in torch.nonzero(total_c > 0).tolist():
                out[f"mae_meV/{element_symbol(a)}-{element_symbol(b)}"] = mae(total_s[a, b], total_c[a, b])
        return out
