"""Model sizes: the ``net`` section of the training configs ``conf/model/<name>.yaml``, the one place they are
defined. Training composes those files with Hydra; ``preset`` gives the same networks to code (tests, bench)
without Hydra, following each file's ``defaults`` list of other model configs (``_self_`` last unless placed).
"""

from __future__ import annotations

from pathlib import Path

import yaml

MODEL_CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def preset_names() -> list[str]:
    return sorted(p.stem for p in MODEL_CONF.glob("*.yaml"))


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset(name: str) -> dict:
    """The network config (``_target_`` + hyper-parameters) of ``conf/model/<name>.yaml``."""
    path = MODEL_CONF / f"{name}.yaml"
    if not MODEL_CONF.is_dir():
        raise ValueError(f"preset {name!r}: no {MODEL_CONF} (presets are the configs of a source checkout)")
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; choose one of {preset_names()} (conf/model/*.yaml)")
    conf = yaml.safe_load(path.read_text()) or {}
    defaults = list(conf.get("defaults") or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    net: dict = {}
    for entry in defaults:
        if entry == "_self_":
            net = _merge(net, conf.get("net") or {})
        elif isinstance(entry, str):
            net = _merge(net, preset(entry))
        else:
            raise ValueError(f"{path}: defaults entry {entry!r}: presets follow only other model configs by name")
    return net
