"""Training framework for DeepH Hamiltonian models (Lightning + Hydra).

Public API for evaluation/inference: ``load_model(ckpt_path, map_location="cpu") -> LoadedModel``
from the checkpoint format, ``deeph_lightning.models.checkpoint`` (which imports neither Lightning nor Hydra).
"""

__all__ = ["load_model", "LoadedModel", "CheckpointError"]


def __getattr__(name):
    if name in __all__:
        from .models import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'deeph_lightning' has no attribute {name!r}")
