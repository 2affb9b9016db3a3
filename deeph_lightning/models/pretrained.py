"""Pretrained checkpoints shipped in the repository, loadable by name (``load_model("quickstart")``).

``shipped/index.json`` lists them: name -> {"file", "sha256", "summary"}; each has a card ``shipped/<name>.md``
(data, recipe, cutoff, budget, metrics) generated when it is trained. A path that exists always wins over a
name, so a local file called like a shipped model is never shadowed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from data_prep.embedded import sha256

SHIPPED = Path(__file__).parent / "shipped"


def shipped_models() -> dict[str, dict]:
    """name -> index entry of every shipped checkpoint."""
    index = SHIPPED / "index.json"
    return json.loads(index.read_text()) if index.exists() else {}


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file for a path, or for the name of a shipped model (checksum verified)."""
    from .checkpoint import CheckpointError

    path = Path(name_or_path)
    models = shipped_models()
    if path.exists() or str(name_or_path) not in models:
        return path
    entry = models[str(name_or_path)]
    file = SHIPPED / entry["file"]
    if not file.is_file():
        raise CheckpointError(f"{file}: shipped model {name_or_path!r} is missing from this installation")
    if sha256(file) != entry["sha256"]:
        raise CheckpointError(f"{file}: shipped model {name_or_path!r} does not match its recorded sha256")
    return file


def ship_checkpoint(ckpt_path: str | os.PathLike, name: str, summary: str, card: str) -> Path:
    """Add a trained checkpoint to the shipped models as ``name``: inference weights and ``deeph`` metadata only
    (no optimizer state), its sha256 in the index and ``card`` as ``shipped/<name>.md``. Returns the file."""
    import torch

    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(ckpt_path)
    meta = dict(ckpt["deeph"])
    prefix = "ema.module." if meta.get("has_ema") else "net."
    weights = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    SHIPPED.mkdir(exist_ok=True)
    file = SHIPPED / f"{name}.ckpt"
    tmp = file.with_suffix(".ckpt.tmp")
    torch.save({"deeph": meta, "state_dict": weights}, tmp)
    os.replace(tmp, file)
    update_index(name, {"file": file.name, "sha256": sha256(file), "summary": summary}, replace=True)
    (SHIPPED / f"{name}.md").write_text(card)
    return file


def update_index(name: str, entry: dict, replace: bool = False) -> None:
    """Merge ``entry`` into the index entry of the shipped model ``name`` (``replace``: start it afresh)."""
    models = shipped_models()
    models[name] = {**({} if replace else models.get(name, {})), **entry}
    (SHIPPED / "index.json").write_text(json.dumps(models, indent=1, sort_keys=True) + "\n")
