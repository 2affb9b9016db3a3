"""DeepSpeed ZeRO on CPU processes (gloo), for tests and small machines.

Lightning's ``DeepSpeedStrategy`` refuses any accelerator but CUDA, although DeepSpeed itself runs on CPU
(its CPU accelerator, gloo collectives). ``CPUDeepSpeedStrategy`` lifts only that and is refused on anything
but the CPU accelerator, so GPU runs keep using Lightning's own strategy unchanged.

Nothing here needs a C++ build: pass a torch optimizer (``torch.optim.AdamW``) from ``configure_optimizers``
(DeepSpeed's FusedAdam/CPUAdam are JIT-compiled with g++/nvcc on first use), and DeepSpeed's shared-memory
all-reduce op (also JIT-compiled, ~1 min with g++) is switched off unless ``shm_comm=True``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.seed import reset_seed
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy, StrategyRegistry

_SHM_COMM_OP = "deepspeed_shm_comm"


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` for ``accelerator="cpu"``: ZeRO stages 1-3 over gloo.

    Takes every ``DeepSpeedStrategy`` argument (``stage``, ``config``, ...) plus ``shm_comm``: use DeepSpeed's
    shared-memory all-reduce (JIT-compiled with g++ into ``$TORCH_EXTENSIONS_DIR`` on first use).
    """

    strategy_name = "deepspeed_cpu"

    def __init__(self, *args: Any, shm_comm: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shm_comm = shm_comm
        self._cpu_device_rank = False

    def setup_environment(self) -> None:
        if not isinstance(self.accelerator, CPUAccelerator):
            raise RuntimeError(
                f"CPUDeepSpeedStrategy runs only with accelerator='cpu', got "
                f"{type(self.accelerator).__name__}; on GPUs use Lightning's DeepSpeedStrategy "
                "(conf/trainer/deepspeed_stage*.yaml)"
            )
        # DeepSpeedStrategy.setup_environment only adds the CUDA check before DDPStrategy's.
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        # The parent checks CUDA device indices against local ranks; CPU devices have no index.
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _init_deepspeed_distributed(self) -> None:
        import deepspeed.ops

        if not self.shm_comm:
            deepspeed.ops.__compatible_ops__[_SHM_COMM_OP] = False
        super()._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        # deepspeed.initialize gets `device_rank=root_device.index`; a negative or missing rank makes the engine
        # run as world size 1, so while it is called the CPU device carries the local rank as its index.
        if self._cpu_device_rank:
            return torch.device("cpu", self.local_rank)
        return super().root_device

    @contextlib.contextmanager
    def _indexed_cpu_device(self):
        self._cpu_device_rank = True
        try:
            yield
        finally:
            self._cpu_device_rank = False

    def _setup_model_and_optimizer(self, *args: Any, **kwargs: Any):
        with self._indexed_cpu_device():
            return super()._setup_model_and_optimizer(*args, **kwargs)

    def _initialize_deepspeed_inference(self, model: torch.nn.Module) -> None:
        with self._indexed_cpu_device():
            super()._initialize_deepspeed_inference(model)

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        for stage in (1, 2, 3):
            strategy_registry.register(
                f"deepspeed_cpu_stage_{stage}",
                cls,
                description=f"DeepSpeed ZeRO stage {stage} on CPU processes (gloo)",
                stage=stage,
            )


def deepspeed_strategy(stage: int, accelerator: str = "gpu", **kwargs: Any) -> DeepSpeedStrategy:
    """ZeRO ``stage`` strategy for ``accelerator``: Lightning's on GPUs, ``CPUDeepSpeedStrategy`` on ``"cpu"``.

    Used by conf/trainer/deepspeed_*.yaml with ``accelerator: ${trainer.accelerator}``.
    """
    if str(accelerator) == "cpu":
        return CPUDeepSpeedStrategy(stage=stage, **kwargs)
    return DeepSpeedStrategy(stage=stage, **kwargs)


if "deepspeed_cpu_stage_1" not in StrategyRegistry:
    CPUDeepSpeedStrategy.register_strategies(StrategyRegistry)


def zero_to_plain_checkpoint(ckpt_dir: str | os.PathLike, output_file: str | os.PathLike) -> Path:
    """Consolidate a DeepSpeed checkpoint folder (any ZeRO stage, any world size) into one plain Lightning
    checkpoint file with full fp32 weights, loadable by ``deeph_lightning.load_model`` and by
    ``Trainer.fit(ckpt_path=...)`` without DeepSpeed (optimizer states are dropped).

    Runs on CPU in one process. The output is written to a temporary name and renamed when complete.
    """
    from pytorch_lightning.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    src, out = Path(ckpt_dir), Path(output_file)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a DeepSpeed checkpoint folder (expected a directory)")
    if not (src / "latest").is_file():
        raise FileNotFoundError(f"{src}: no 'latest' tag file; not a DeepSpeed checkpoint folder written by Lightning")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        convert_zero_checkpoint_to_fp32_state_dict(src, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
