"""Exponential moving average (EMA) of a network's parameters: the weights validated, tested and saved for
inference (``checkpoint["state_dict"]["ema.module.*"]``)."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel


def ema_warmup_fn(decay: float):
    """EMA update with warm-up: after n updates the decay is min(decay, (1 + n) / (10 + n)), so the average
    forgets the random initial weights within a few steps instead of ~1/(1 - decay) steps (short runs,
    e.g. the quickstart, would otherwise validate a network dominated by its initialisation)."""

    def update(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(ema_params, params, 1.0 - d)

    return update


def averaged_copy(net: torch.nn.Module, decay: float) -> AveragedModel:
    """A frozen EMA copy of ``net``.

    Parameters only: averaging buffers (use_buffers=True) round integer index buffers through float (3 -> 2)
    and drifts float constants, so the in-memory EMA net validated during training differed from the one
    saved (non-persistent buffers are rebuilt on load). ``update_average`` copies the buffers instead.
    """
    ema = AveragedModel(net, multi_avg_fn=ema_warmup_fn(decay), use_buffers=False)
    ema.requires_grad_(False)
    return ema


def update_average(ema: AveragedModel, net: torch.nn.Module) -> None:
    """One EMA step towards ``net``'s parameters; buffers are not averaged: constants stay exact, running
    statistics follow the net."""
    ema.update_parameters(net)
    for ema_buf, buf in zip(ema.module.buffers(), net.buffers()):
        ema_buf.copy_(buf)
