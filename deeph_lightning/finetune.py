"""Fine-tuning: a run that starts from a trained model's weights (``finetune_from=<checkpoint | shipped name>``).

The checkpoint defines the model: its network, element table (basis), cutoff, target gauge with its tables
(isolated atoms, Hückel K) and output statistics. The run's config supplies how to train: loss, optimizer,
schedule, budget, EMA. The data must fit that model: elements it knows with the same DFT basis, packed at its
cutoff. The weights (the EMA ones where the checkpoint has them) start both the network and its EMA copy;
a fine-tuning run that is resumed (``ckpt_path``) takes them from its own checkpoint instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from data_prep.basis import BasisTable, element_symbol
from data_prep.bonds import merge_bond_tables

from .models.checkpoint import CheckpointError, network_weights, read_checkpoint


class FineTuneError(ValueError):
    """The checkpoint cannot be read, or the data does not fit the model it describes."""


@dataclass
class FineTuneStart:
    source: str  # as given: a path or a shipped model's name
    meta: dict  # checkpoint["deeph"]
    weights: dict[str, torch.Tensor]

    @property
    def basis(self) -> BasisTable:
        return BasisTable.from_dict(self.meta["basis"])

    def model_kwargs(self) -> dict:
        """What the checkpoint fixes of ``HamiltonianModule``: the network (with its output statistics), the
        target gauge and its tables."""
        kwargs = {"net": self.meta["net"], "target_gauge": self.meta.get("target_gauge", "raw")}
        if self.meta.get("atom_onsite") is not None:
            kwargs["atom_onsite"] = self.meta["atom_onsite"]
        if self.meta.get("huckel_k") is not None:
            kwargs["huckel_k"] = self.meta["huckel_k"]
        return kwargs

    def overridden(self, model_cfg) -> list[str]:
        """The run's model settings the checkpoint overrides (they would change what the weights mean)."""
        out = []
        gauge = self.meta.get("target_gauge", "raw")
        if model_cfg.get("target_gauge", "raw") != gauge:
            out.append(f"model.target_gauge={model_cfg.get('target_gauge', 'raw')} (the checkpoint's: {gauge})")
        if gauge == "huckel" and float(model_cfg.get("huckel_k", self.meta["huckel_k"])) != float(self.meta["huckel_k"]):
            out.append(f"model.huckel_k={model_cfg.get('huckel_k')} (the checkpoint's: {self.meta['huckel_k']})")
        return out

    def load_into(self, module) -> None:
        """The checkpoint's weights into ``module.net`` and its EMA copy."""
        module.net.load_state_dict(self.weights, strict=True)
        if module.ema is not None:
            module.ema.module.load_state_dict(self.weights, strict=True)

    def training_bonds(self, new: dict) -> dict | None:
        """The bonds the fine-tuned model has seen: the checkpoint's (when recorded) and the new training split's."""
        old = self.meta.get("training_bonds")
        return merge_bond_tables(old, new) if old is not None else new

    def provenance(self) -> dict:
        return {"source": self.source, "global_step": int(self.meta.get("global_step", 0)),
                "dft_recipe": self.meta.get("dft_recipe")}


def finetune_start(source: str) -> FineTuneStart:
    """Read ``source`` (a plain checkpoint file or a shipped model's name) as a starting point."""
    try:
        ckpt = read_checkpoint(source)
        weights = network_weights(ckpt, source)
    except CheckpointError as err:
        raise FineTuneError(f"finetune_from={source}: {err}") from None
    return FineTuneStart(source=str(source), meta=ckpt["deeph"], weights=weights)


def data_problems(start: FineTuneStart, data_basis: BasisTable, data_cutoff: float, data_path) -> list[str]:
    """Why the packed data at ``data_path`` cannot fine-tune the checkpoint's model (empty: it can)."""
    model_basis = start.basis
    problems = []
    unknown = [z for z in data_basis.elements if z not in model_basis]
    if unknown:
        problems.append(f"{data_path} has element(s) {', '.join(element_symbol(z) for z in unknown)} that "
                        f"{start.source} was not trained on (its elements: "
                        f"{', '.join(element_symbol(z) for z in model_basis.elements)})")
    other = [z for z in data_basis.elements if z in model_basis and data_basis.shells_of(z) != model_basis.shells_of(z)]
    if other:
        problems.append(f"{data_path} has another DFT basis for {', '.join(element_symbol(z) for z in other)} than "
                        f"{start.source} (shells {data_basis.shells_of(other[0])} vs {model_basis.shells_of(other[0])})")
    cutoff = float(start.meta["cutoff"])
    if abs(float(data_cutoff) - cutoff) > 1e-9:
        problems.append(f"{data_path} is packed with cutoff {data_cutoff:g} Å, {start.source} uses {cutoff:g} Å: "
                        f"pack it with `deeph-prep pack ... --cutoff {cutoff:g}`")
    return problems
