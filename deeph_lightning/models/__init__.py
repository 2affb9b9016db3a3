"""Hamiltonian networks (plain ``torch.nn.Module``s, no Lightning).

    model = build_model("deeph2", basis=basis.to_dict(), cutoff=7.0, preset="deeph2_small")
    out = model(batch)   # batch: torch_geometric Batch of data_prep.torch_data.BlockData
    out["h_node"] (N, M, M), out["h_edge"] (E, M, M): union basis, OpenMX order, zero outside each
    element's orbitals; H_ii symmetric and H_ij(R) = H_ji(-R)ᵀ exactly.

Names: "deeph2" (``DeepH2``, bond-frame SO(2) transformer) and "deeph_e3" (``DeepHE3``, full e3nn
tensor-product baseline); both take the same keyword arguments. Presets: the training configs
conf/model/<name>.yaml (``presets``). The checkpoint format: ``checkpoint``. Losses: ``losses``.
"""

from __future__ import annotations

from .deeph2 import DeepH2
from .deeph_e3 import DeepHE3
from . import losses
from . import presets as _presets

MODELS = {"deeph2": DeepH2, "deeph_e3": DeepHE3}


def build_model(name: str, basis, cutoff: float, preset: str | None = None, **kwargs):
    """Model by name ("deeph2" | "deeph_e3"), optionally starting from the hyper-parameters of the preset
    ``conf/model/<preset>.yaml`` (e.g. "deeph2_small", "deeph2_universal"); ``kwargs`` override them."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    params = {k: v for k, v in (_presets.preset(preset) if preset else {}).items() if k != "_target_"}
    return MODELS[name](basis=basis, cutoff=cutoff, **{**params, **kwargs})


def __getattr__(name):
    if name == "PRESETS":  # {name: hyper-parameters} of every conf/model/*.yaml, read when asked for
        return {p: {k: v for k, v in _presets.preset(p).items() if k != "_target_"} for p in _presets.preset_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DeepH2", "DeepHE3", "MODELS", "PRESETS", "build_model", "losses"]
