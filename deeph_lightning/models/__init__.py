"""Hamiltonian networks (plain ``torch.nn.Module``s, no Lightning).

    model = build_model("deeph2", basis=basis.to_dict(), cutoff=7.0, **PRESETS["small"])
    out = model(batch)   # batch: torch_geometric Batch of data_prep.torch_data.BlockData
    out["h_node"] (N, M, M), out["h_edge"] (E, M, M): union basis, OpenMX order, zero outside each
    element's orbitals; H_ii symmetric and H_ij(R) = H_ji(-R)ᵀ exactly.

Names: "deeph2" (``DeepH2``, bond-frame SO(2) transformer) and "deeph_e3" (``DeepHE3``, full e3nn
tensor-product baseline); both take the same keyword arguments. Losses: ``losses``.
"""

from __future__ import annotations

from .deeph2 import DeepH2
from .deeph_e3 import DeepHE3
from . import losses

MODELS = {"deeph2": DeepH2, "deeph_e3": DeepHE3}

# Hyper-parameters besides basis/cutoff. "small": trains on a laptop CPU; "universal": the scale of the
# published universal DeepH-2 model (tens of millions of parameters).
PRESETS = {
    "small": dict(lmax=4, mmax=2, channels=16, pseudo_channels=8, layers=2, heads=2, num_radial=16,
                  hidden_radial=32),
    "universal": dict(lmax=4, mmax=2, channels=128, pseudo_channels=64, layers=6, heads=8, num_radial=32,
                      hidden_radial=128),
}


def build_model(name: str, basis, cutoff: float, preset: str | None = None, **kwargs):
    """Model by name ("deeph2" | "deeph_e3"), optionally starting from ``PRESETS[preset]``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    params = {**(PRESETS[preset] if preset else {}), **kwargs}
    return MODELS[name](basis=basis, cutoff=cutoff, **params)


__all__ = ["DeepH2", "DeepHE3", "MODELS", "PRESETS", "build_model", "losses"]
