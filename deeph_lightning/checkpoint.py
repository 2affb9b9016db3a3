"""Loading our self-describing checkpoints (the public API used by evaluation and inference).

A checkpoint written by ``HamiltonianModule`` holds, under ``checkpoint["deeph"]``: the network's
config (``_target_`` + hyper-parameters), the basis table, the cutoff, the record schema version,
the orbital order and units, whether EMA weights are present, the resolved run config, the W&B
run id and the training data's DFT recipe (``dft_recipe``: basis, xc, pseudo, code; None if unknown).
``load_model`` rebuilds the network from that alone (no config files needed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from data_prep.basis import BasisTable
from data_prep.records import SCHEMA_VERSION

from .module import CHECKPOINT_FORMAT, build_net


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
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a deeph-lightning checkpoint (no 'deeph' metadata; was it written by train.py?)"
        )
    if int(meta.get("schema_version", -1)) != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: trained on record schema version {meta.get('schema_version')}, this code uses {SCHEMA_VERSION}"
        )
    return meta


def _torch_load(path: Path, map_location, **kw):
    try:
        return torch.load(path, map_location=map_location, weights_only=True, **kw)
    except Exception as err:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(
            f"{path}: not a deeph-lightning checkpoint (torch.load failed: {type(err).__name__}: {str(err)[:200]})"
        ) from None


def read_checkpoint(ckpt_path: str | os.PathLike, map_location="cpu") -> dict:
    """A plain (single-file) checkpoint with its ``deeph`` metadata checked."""
    path = Path(ckpt_path)
    if is_deepspeed_checkpoint(path):
        raise CheckpointError(
            f"{path}: a DeepSpeed checkpoint folder; make a plain file first with "
            "deeph_lightning.strategies.zero_to_plain_checkpoint(folder, 'model.ckpt')"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    ckpt = _torch_load(path, map_location)
    _check_meta(path, ckpt.get("deeph") if isinstance(ckpt, dict) else None)
    return ckpt


def checkpoint_meta(ckpt_path: str | os.PathLike) -> dict:
    """The ``deeph`` metadata of a plain checkpoint file or of a DeepSpeed checkpoint folder."""
    path = Path(ckpt_path)
    if path.is_dir():
        states = deepspeed_model_states_file(path)
        # mmap: the weights in the same file are not read
        ckpt = _torch_load(states, "cpu", mmap=True)
        return _check_meta(path, ckpt.get("deeph") if isinstance(ckpt, dict) else None)
    return read_checkpoint(path)["deeph"]


def load_model(ckpt_path: str | os.PathLike, map_location="cpu") -> LoadedModel:
    """Rebuild the trained network from a checkpoint; EMA weights when the checkpoint has them."""
    ckpt = read_checkpoint(ckpt_path, map_location)
    meta = ckpt["deeph"]
    basis = BasisTable.from_dict(meta["basis"])
    cutoff = float(meta["cutoff"])
    model = build_net(meta["net"], basis, cutoff)
    state = ckpt["state_dict"]
    prefix = "ema.module." if meta.get("has_ema") else "net."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{ckpt_path}: checkpoint has no weights under {prefix!r}")
    dtype = getattr(torch, meta.get("dtype", "float32"))
    model.to(dtype)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{ckpt_path}: weights do not fit the network described in the checkpoint ({err})") from None
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return LoadedModel(model=model, basis=basis, cutoff=cutoff, meta=meta)
