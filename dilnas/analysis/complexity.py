"""Parameter and multiply-accumulate counts, with torch's own FLOP counter on the meta device.

Counting on ``meta`` tensors costs no memory and no arithmetic, so 1024x2048 counts take a second.
Only convolutions and matrix products count (as torch's FlopCounterMode does); BN, pooling, activations
and interpolation are left out.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on an input of ``input_shape`` (N, C, H, W)."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(*input_shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(x)
    return counter.get_total_flops() // 2  # torch counts a multiply-accumulate as 2 FLOPs
