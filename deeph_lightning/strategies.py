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


if "deepspeed_cpu_stage_1" not in StrategyRegistry:
    CPUDeepSpeedStrategy.register_strategies(StrategyRegistry)
