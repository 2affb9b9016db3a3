"""Training framework for DeepH Hamiltonian models (Lightning + Hydra).

Public API for evaluation/inference: ``load_model(ckpt_path, map_location="cpu") -> LoadedModel``
(imported lazily, so ``import deeph_lightning.models`` does not pull in Lightning).
"""

__all__ = ["load_model", "LoadedModel", "CheckpointError"]


def __getattr__(name):
    if name in __all__:
        from . import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'deeph_lightning' has no attribute {name!r}")
