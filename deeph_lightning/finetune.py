"""Fine-tuning: a run that starts from a trained model's weights (``finetune_from=<checkpoint | shipped name>``).

The checkpoint defines the model: its network, element table (basis), cutoff, target gauge with its tables
(isolated atoms, Hückel K) and output statistics. The run's config supplies how to train: loss, optimizer,
schedule, budget, EMA. The data must fit that model: the same DFT basis for the elements it knows, packed at its
cutoff. The weights (the EMA ones where the checkpoint has them) start both the network and its EMA copy;
a fine-tuning run that is resumed (``ckpt_path``) takes them from its own checkpoint instead.

Elements the model does not know are added (``add_elements``) when their orbitals fit the model's union basis
(its readout has no slots for more shells): the embeddings are indexed by atomic number, so the new element's
rows exist; with ``element_init="group"`` they start as those of the nearest element of its group of the periodic
table that the model knows (Zr as Ti), with ``"untrained"`` as they are. Its isolated-atom reference comes from
the data's recipe, and its output statistics (and those of its pairs) from the new training split. The model's
own tables are kept unchanged, so what it predicts for the elements it knew does not move until training moves
the weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from data_prep.basis import BasisTable, element_symbol
from data_prep.bonds import merge_bond_tables
from data_prep.gauge import ATOM_GAUGES, HUCKEL_K

from .models.block_scale import extend_block_stats
from .models.common import MAX_Z
from .models.checkpoint import CheckpointError, network_weights, read_checkpoint


class FineTuneError(ValueError):
    """The checkpoint cannot be read, or the data does not fit the model it describes."""


@dataclass
class FineTuneStart:
    source: str  # as given: a path or a shipped model's name
    meta: dict  # checkpoint["deeph"]
    weights: dict[str, torch.Tensor]
    added_elements: tuple[int, ...] = ()  # atomic numbers the data brings in (``add_elements``)
    element_init: dict[int, int] | None = None  # new element -> the known one whose embedding rows it starts from

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
        out = {"source": self.source, "global_step": int(self.meta.get("global_step", 0)),
               "dft_recipe": self.meta.get("dft_recipe")}
        if self.added_elements:
            out["added_elements"] = [element_symbol(z) for z in self.added_elements]
            out["element_init"] = {element_symbol(z): element_symbol(d) for z, d in (self.element_init or {}).items()}
        return out


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
    unknown = model_basis.unknown(data_basis.elements)
    too_large = [z for z in unknown if not fits_union_basis(model_basis, data_basis.shells_of(z))]
    if too_large:
        problems.append(f"{data_path} has element(s) {', '.join(element_symbol(z) for z in too_large)} whose "
                        f"orbitals do not fit {start.source}'s readout (shells {data_basis.shells_of(too_large[0])}; "
                        f"the model has slots for {model_basis.union_shells}): train a model with this basis "
                        "from scratch")
    other = [z for z in data_basis.elements if z in model_basis and data_basis.shells_of(z) != model_basis.shells_of(z)]
    if other:
        problems.append(f"{data_path} has another DFT basis for {', '.join(element_symbol(z) for z in other)} than "
                        f"{start.source} (shells {data_basis.shells_of(other[0])} vs {model_basis.shells_of(other[0])})")
    cutoff = float(start.meta["cutoff"])
    if abs(float(data_cutoff) - cutoff) > 1e-9:
        problems.append(f"{data_path} is packed with cutoff {data_cutoff:g} Å, {start.source} uses {cutoff:g} Å: "
                        f"pack it with `deeph-prep pack ... --cutoff {cutoff:g}`")
    return problems


def fits_union_basis(model_basis: BasisTable, shells) -> bool:
    """An element with ``shells`` fits the model's readout: no more shells of any l than its union basis has."""
    return all(list(shells).count(l) <= model_basis.union_shells.count(l) for l in set(shells))


ELEMENT_INITS = ("group", "untrained")


def started_as(element_init: dict[str, str]) -> str:
    """``provenance()["element_init"]`` as "Zr as Ti, Ca as Be" (empty when none)."""
    return ", ".join(f"{z} as {d}" for z, d in element_init.items())


def group_donor(z: int, known) -> int | None:
    """The element of ``known`` in the same group of the periodic table as ``z``, nearest in period (the lighter
    one on a tie); None when the model knows no element of that group."""
    from pymatgen.core import Element

    group, row = Element.from_Z(z).group, Element.from_Z(z).row
    same = [k for k in known if Element.from_Z(k).group == group]
    return min(same, key=lambda k: (abs(Element.from_Z(k).row - row), k)) if same else None


def start_new_elements(weights: dict[str, torch.Tensor], donors: dict[int, int]) -> dict[str, torch.Tensor]:
    """``weights`` with the rows of every parameter indexed by atomic number (embeddings: first dimension
    MAX_Z + 1) of each new element copied from its donor."""
    out = dict(weights)
    for key, value in weights.items():
        if value.ndim >= 1 and value.shape[0] == MAX_Z + 1:
            value = value.clone()
            for z, donor in donors.items():
                value[z] = value[donor]
            out[key] = value
    return out


def add_elements(start: FineTuneStart, datamodule, element_init: str = "group") -> FineTuneStart:
    """``start`` extended by the elements of the data it does not know (``data_problems`` has passed): element
    table, isolated-atom table (atoms/huckel gauges, for the data's recipe) and output statistics (from the
    training split, in the model's gauge; the model's own entries unchanged) and, with ``element_init="group"``,
    embeddings started from a known element of the same group; ``start`` itself when there are none. The data is
    padded to the resulting element table."""
    if element_init not in ELEMENT_INITS:
        raise FineTuneError(f"finetune_element_init={element_init!r}: expected one of {', '.join(ELEMENT_INITS)}")
    data_basis = datamodule.records.basis
    new = tuple(start.basis.unknown(data_basis.elements))
    if not new:
        datamodule.use_model_basis(start.basis)
        return start
    in_training = set()
    for i in datamodule.split_indices("train"):
        in_training.update(datamodule.records.fields(i, ("atomic_numbers",))["atomic_numbers"].tolist())
    missing = [z for z in new if z not in in_training]
    if missing:
        raise FineTuneError(f"{datamodule.path}: element(s) {', '.join(element_symbol(z) for z in missing)} that "
                            f"{start.source} does not know are in no structure of the training split, so there is "
                            "nothing to learn them from: repack with them in training (deeph-prep pack --split)")
    meta = copy.deepcopy(start.meta)
    basis = start.basis.merge(data_basis)
    meta["basis"] = basis.to_dict()
    datamodule.use_model_basis(basis)
    gauge = meta.get("target_gauge", "raw")
    atoms = None
    if gauge in ATOM_GAUGES:
        try:
            atoms = {**meta["atom_onsite"], **datamodule.atom_onsite_table(new)}
        except ValueError as err:  # the recipe cannot describe the new element's free atom
            raise FineTuneError(f"cannot add {', '.join(element_symbol(z) for z in new)} to {start.source}: {err}") from None
        meta["atom_onsite"] = atoms
    stats = meta["net"].get("block_stats")
    if stats:
        found = datamodule.block_statistics(target_gauge=gauge, decay="hopping_decay" in stats, atom_onsite=atoms,
                                            huckel_k=meta.get("huckel_k") or HUCKEL_K, combine=False)
        meta["net"]["block_stats"] = extend_block_stats(stats, found, basis.elements)
    donors = {}
    if element_init == "group":
        donors = {z: d for z in new if (d := group_donor(z, start.basis.elements)) is not None}
    return replace(start, meta=meta, added_elements=new, element_init=donors,
                   weights=start_new_elements(start.weights, donors))

