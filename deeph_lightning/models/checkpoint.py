"""The checkpoint format: what a trained model's file holds, written and read by this module alone.

A checkpoint is a Lightning checkpoint whose ``checkpoint["deeph"]`` (written by :func:`describe`, called from
``HamiltonianModule.on_save_checkpoint``) states each fact once:

    format, format_version   "deeph-lightning", 1
    net                      the network: "_target_" (one of ``NETWORKS``) + plain hyper-parameters
    basis                    ``BasisTable.to_dict()`` of the training data (elements, shells)
    cutoff                   Å; graphs for this model are built with it
    schema_version           the LMDB record schema the model was trained on
    orbital_order, units     "openmx"; {"length": "angstrom", "energy": "eV"}
    has_ema, dtype           weights under ``state_dict["ema.module.*"]`` (else ``"net.*"``), their dtype
    config                   the resolved run config (provenance of the run, not read back to build the model)
    dft_recipe               the training data's DFT recipe ({"basis", "xc", "pseudo", "code"}) or None
    target_gauge             "raw" (DFT's own energy zero), "standardised" (the network predicts H - μ·S,
                             <H,S> = 0 per structure), "atoms" (μ aligns the on-site blocks with the isolated
                             atoms) or "huckel" (the network predicts H - H0, H0 from the atoms and S;
                             ``data_prep.gauge``); absent in older files: "raw"
    atom_onsite              atoms, huckel: {"Z": isolated-atom on-site H, n_orb x n_orb eV}, else None
    huckel_k                 huckel: the extended-Hückel K of H0, else None
    training_bonds           the training split's nearest-neighbour bonds, {"A-B": [bonds, shortest Å, longest Å,
                             structures]} (``data_prep.bonds.bond_table``); absent in older files
    finetuned_from           a fine-tuned model's start: {"source": path or shipped name, "global_step",
                             "dft_recipe"}; None when trained from scratch, absent in older files
    wandb_run_id, global_step

A checkpoint is data: it is read with ``torch.load(weights_only=True)`` and the network is rebuilt from
``NETWORKS`` (our classes) and plain values (numbers, strings, lists and dicts of those), never from any other
``_target_`` in the file. Neither Lightning nor Hydra is imported here.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from data_prep.basis import BasisTable
from data_prep.gauge import ATOM_GAUGES, GAUGES
from data_prep.records import SCHEMA_VERSION

from . import MODELS
from .pretrained import resolve_checkpoint, shipped_models

FORMAT = "deeph-lightning"
FORMAT_VERSION = 1
ORBITAL_ORDER = "openmx"
UNITS = {"length": "angstrom", "energy": "eV"}
DTYPES = ("float32", "float64", "float16", "bfloat16")

# The networks a checkpoint (or a training config) may name as net._target_: our models (models.MODELS).
NETWORKS: dict[str, type[torch.nn.Module]] = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in MODELS.values()}


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a deeph-lightning checkpoint."""


@dataclass
class LoadedModel:
    model: torch.nn.Module  # eval mode; forward(Batch of BlockData) -> dict(h_node, h_edge), OpenMX order, eV
    basis: BasisTable
    cutoff: float  # Å; build graphs with this cutoff (data_prep.torch_data.structure_to_data)
    meta: dict  # everything under checkpoint["deeph"] (config, dtype, schema_version, dft_recipe, ...)

    @property
    def dft_recipe(self) -> dict | None:
        """The training data's DFT recipe ({"basis", "xc", "pseudo", "code"}), None for older checkpoints."""
        return self.meta.get("dft_recipe")

    @property
    def target_gauge(self) -> str:
        """"raw", "standardised" (predicted H - μ·S with <H,S> = 0 per structure), "atoms" or "huckel" (the
        network predicts H minus ``reference_blocks``, standardised; ``data_prep.gauge``)."""
        return self.meta.get("target_gauge", "raw")

    @property
    def training_bonds(self) -> dict | None:
        """The training split's nearest-neighbour bonds per element pair (``data_prep.bonds.bond_table``), None
        for older checkpoints."""
        return self.meta.get("training_bonds")

    def reference_blocks(self, numbers, overlaps=None, keys=None) -> dict | None:
        """The reference of the gauge a structure's prediction is in (``data_prep.gauge``; None for raw and
        standardised): atoms, {(0, 0, 0, i, i): isolated-atom on-site H}; huckel, H0 on ``keys`` (default: every
        block of ``overlaps``, the structure's S(R))."""
        from data_prep.gauge import atom_blocks, huckel_blocks

        table = {int(z): v for z, v in (self.meta.get("atom_onsite") or {}).items()}
        if self.target_gauge == "atoms":
            return atom_blocks(numbers, table)
        if self.target_gauge == "huckel":
            if overlaps is None:
                raise ValueError("a huckel-gauge model's H0 needs the structure's overlaps S(R)")
            return huckel_blocks(numbers, table, overlaps, keys, self.meta["huckel_k"])
        return None


# --- building the network from plain values ---------------------------------------------------------------
_SCALARS = (bool, int, float, str, type(None))


def _plain_problem(value, where: str) -> str | None:
    """Why ``value`` is not plain data (numbers, strings, None, lists and dicts of those), or None."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _plain_problem(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                return f"{where} has a key of type {type(key).__name__}"
            if isinstance(key, str) and key.startswith("_") and key.endswith("_"):
                return f"{where}.{key} = {str(item)[:80]!r} is not a network hyper-parameter"
            problem = _plain_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}, not a number, string, list or dict"


def build_net(net: dict, basis: BasisTable, cutoff: float) -> torch.nn.Module:
    """The network ``net`` describes: ``net["_target_"]`` one of ``NETWORKS``, every other entry a plain
    keyword argument. ``ValueError`` for anything else (nothing is imported or called from the config).

    Networks take ``basis`` in ``BasisTable.to_dict()`` form and ``cutoff`` in Å (see deeph_lightning.models).
    """
    if not isinstance(net, dict):
        raise ValueError(f"the network config is a {type(net).__name__}, expected a dict")
    target = net.get("_target_")
    cls = NETWORKS.get(target) if isinstance(target, str) else None
    if cls is None:
        raise ValueError(f"net._target_ {str(target)[:80]!r} is not one of our networks ({', '.join(NETWORKS)})")
    params = {k: v for k, v in net.items() if k != "_target_"}
    problem = _plain_problem(params, "net")
    if problem:
        raise ValueError(problem)
    accepted = set(inspect.signature(cls).parameters) - {"basis", "cutoff"}
    unknown = sorted(set(params) - accepted, key=str)
    if unknown:
        raise ValueError(f"net: {cls.__name__} takes no argument(s) {', '.join(map(str, unknown))}")
    return cls(basis=basis.to_dict(), cutoff=float(cutoff), **params)


# --- writing ------------------------------------------------------------------------------------------------
def describe(net: dict, basis: BasisTable, cutoff: float, *, has_ema: bool, dtype: torch.dtype,
             config: dict | None, dft_recipe: dict | None, wandb_run_id: str | None, global_step: int,
             target_gauge: str = "raw", atom_onsite: dict | None = None, huckel_k: float | None = None,
             training_bonds: dict | None = None, finetuned_from: dict | None = None) -> dict:
    """``checkpoint["deeph"]`` for a network ``build_net(net, basis, cutoff)`` and its run."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "net": net,
        "basis": basis.to_dict(),
        "cutoff": float(cutoff),
        "schema_version": SCHEMA_VERSION,
        "orbital_order": ORBITAL_ORDER,
        "units": dict(UNITS),
        "has_ema": bool(has_ema),
        "dtype": str(dtype).replace("torch.", ""),
        "config": config,
        "dft_recipe": dft_recipe,
        "target_gauge": target_gauge,
        "atom_onsite": atom_onsite,
        "huckel_k": huckel_k,
        "training_bonds": training_bonds,
        "finetuned_from": finetuned_from,
        "wandb_run_id": wandb_run_id,
        "global_step": int(global_step),
    }


# --- reading ------------------------------------------------------------------------------------------------
def is_deepspeed_checkpoint(path: str | os.PathLike) -> bool:
    """A DeepSpeed checkpoint folder as Lightning's DeepSpeedStrategy writes it (``latest`` tag file inside)."""
    return Path(path).is_dir() and (Path(path) / "latest").is_file()


def deepspeed_model_states_file(ckpt_dir: str | os.PathLike) -> Path:
    """Rank 0's model-states file of a DeepSpeed checkpoint folder: holds the client state (our ``deeph``
    metadata, Lightning's loops/callbacks) and, below ZeRO-3, the full module weights."""
    root = Path(ckpt_dir)
    if not is_deepspeed_checkpoint(root):
        raise CheckpointError(f"{root}: not a DeepSpeed checkpoint folder (no 'latest' tag file)")
    tag = (root / "latest").read_text().strip()
    for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt"):  # ZeRO-1/2, ZeRO-3
        if (root / tag / name).is_file():
            return root / tag / name
    raise CheckpointError(f"{root}: DeepSpeed checkpoint without a rank-0 model-states file in {root / tag}")


def _check_meta(path: Path, meta) -> dict:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a deeph-lightning checkpoint (no 'deeph' metadata; was it written by train.py?)"
        )
    try:
        schema = int(meta.get("schema_version", -1))
    except (TypeError, ValueError):
        schema = None
    if schema != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: trained on record schema version {meta.get('schema_version')}, this code uses {SCHEMA_VERSION}"
        )
    units = meta.get("units")
    if units is not None and (not isinstance(units, dict) or {k: units.get(k) for k in UNITS} != UNITS):
        raise CheckpointError(
            f"{path}: checkpoint declares units {units}; this code works in Å and eV ({UNITS}) "
            "and would silently mis-scale energies"
        )
    order = meta.get("orbital_order", ORBITAL_ORDER)
    if order != ORBITAL_ORDER:
        raise CheckpointError(f"{path}: checkpoint predicts blocks in {order!r} orbital order, expected 'openmx'")
    if meta.get("target_gauge", "raw") not in GAUGES:
        raise CheckpointError(f"{path}: checkpoint target gauge {str(meta.get('target_gauge'))[:40]!r} is not one of {GAUGES}")
    if meta.get("target_gauge") in ATOM_GAUGES and not isinstance(meta.get("atom_onsite"), dict):
        raise CheckpointError(f"{path}: a {meta['target_gauge']}-gauge checkpoint without its isolated-atom table "
                              "(atom_onsite)")
    if meta.get("target_gauge") == "huckel" and not isinstance(meta.get("huckel_k"), (int, float)):
        raise CheckpointError(f"{path}: a huckel-gauge checkpoint without its extended-Hückel K (huckel_k)")
    if meta.get("dtype", "float32") not in DTYPES:
        raise CheckpointError(f"{path}: checkpoint dtype {str(meta.get('dtype'))[:40]!r} is not one of {DTYPES}")
    problem = _training_bonds_problem(meta.get("training_bonds"))
    if problem:
        raise CheckpointError(f"{path}: training_bonds {problem}")
    return meta


def _training_bonds_problem(table) -> str | None:
    """Why ``table`` is not a ``data_prep.bonds.bond_table`` ({"A-B": [bonds, shortest, longest, structures]}),
    or None (also for None: older checkpoints have none)."""
    if table is None:
        return None
    if not isinstance(table, dict):
        return f"is a {type(table).__name__}, expected a dict"
    for key, value in table.items():
        if not isinstance(key, str) or key.count("-") != 1:
            return f"key {str(key)[:40]!r} is not an element pair 'A-B'"
        if (not isinstance(value, (list, tuple)) or len(value) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            return f"[{key}] = {str(value)[:60]!r} is not [bonds, shortest Å, longest Å, structures]"
    return None


def _one_line(err: Exception, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _torch_load(path: Path, map_location, **kw):
    try:
        return torch.load(path, map_location=map_location, weights_only=True, **kw)
    except Exception as err:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(
            f"{path}: not a deeph-lightning checkpoint (torch.load failed: {type(err).__name__}: {_one_line(err, 200)})"
        ) from None


def read_checkpoint(ckpt_path: str | os.PathLike, map_location="cpu") -> dict:
    """A plain (single-file) checkpoint, or a shipped model's name, with its ``deeph`` metadata checked."""
    path = resolve_checkpoint(ckpt_path)
    if is_deepspeed_checkpoint(path):
        raise CheckpointError(
            f"{path}: a DeepSpeed checkpoint folder; make a plain file first with "
            "deeph_lightning.strategies.zero_to_plain_checkpoint(folder, 'model.ckpt')"
        )
    if not path.is_file():
        names = ", ".join(shipped_models()) or "none"
        raise CheckpointError(f"{path}: no such checkpoint file (shipped models, loadable by name: {names})")
    ckpt = _torch_load(path, map_location)
    _check_meta(path, ckpt.get("deeph") if isinstance(ckpt, dict) else None)
    return ckpt


def checkpoint_meta(ckpt_path: str | os.PathLike) -> dict:
    """The ``deeph`` metadata of a plain checkpoint file (or shipped model name) or of a DeepSpeed checkpoint folder."""
    path = resolve_checkpoint(ckpt_path)
    if path.is_dir():
        states = deepspeed_model_states_file(path)
        # mmap: the weights in the same file are not read
        ckpt = _torch_load(states, "cpu", mmap=True)
        return _check_meta(path, ckpt.get("deeph") if isinstance(ckpt, dict) else None)
    return read_checkpoint(path)["deeph"]


def network_weights(ckpt: dict, where) -> dict[str, torch.Tensor]:
    """The trained network's state dict in a checkpoint read by ``read_checkpoint``: the EMA weights when it has them."""
    prefix = "ema.module." if ckpt["deeph"].get("has_ema") else "net."
    weights = {k[len(prefix):]: v for k, v in (ckpt.get("state_dict") or {}).items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{where}: checkpoint has no weights under {prefix!r}")
    return weights


def load_model(ckpt_path: str | os.PathLike, map_location="cpu") -> LoadedModel:
    """Rebuild the trained network from a checkpoint; EMA weights when the checkpoint has them."""
    ckpt = read_checkpoint(ckpt_path, map_location)
    meta = ckpt["deeph"]
    try:
        basis = BasisTable.from_dict(meta["basis"])
        cutoff = float(meta["cutoff"])
        model = build_net(meta["net"], basis, cutoff)
    except Exception as err:  # a foreign config fails in our constructors in many ways; nothing of it is run
        raise CheckpointError(f"{ckpt_path}: cannot rebuild the network it describes ({_one_line(err)})") from None
    weights = network_weights(ckpt, ckpt_path)
    model.to(getattr(torch, meta.get("dtype", "float32")))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{ckpt_path}: weights do not fit the network described in the checkpoint ({_one_line(err)})"
        ) from None
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return LoadedModel(model=model, basis=basis, cutoff=cutoff, meta=meta)
