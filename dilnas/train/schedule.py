"""Learning-rate schedule of RegSeg, per iteration: poly decay, multiplied during the warm-up by a linear ramp
from ``warmup_factor`` to 1 (the official schedule: ``lr * (1 - it/total)^power * (f + (1 - f) * it/warmup)``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def warmup_poly_factor(
    step: int, total_steps: int, warmup_steps: int, warmup_factor: float, power: float
) -> float:
    """Multiplier of the base lr at ``step`` (0-based): the poly factor, times the warm-up ramp while it lasts."""
    poly = max(0.0, 1.0 - step / max(1, total_steps)) ** power
    if step < warmup_steps:
        alpha = step / warmup_steps
        return poly * (warmup_factor * (1 - alpha) + alpha)
    return poly


def warmup_poly_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, warmup_factor: float, power: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly_factor(step, total_steps, warmup_steps, warmup_factor, power)
    )


def parameter_groups(
    model: torch.nn.Module, weight_decay: float, exclude: Sequence[torch.nn.Parameter] = ()
) -> list[dict]:
    """Weight decay everywhere except on BatchNorm parameters (RegSeg); ``exclude`` is left out entirely
    (the search's architecture logits, which have their own optimizer)."""
    excluded = {id(param) for param in exclude}
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in excluded:
                continue
            is_norm = isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            (no_decay if is_norm else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
