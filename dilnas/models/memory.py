"""Refuse a network or an input size that would need more memory than the machine has, before allocating it.

The network is built and run on the ``meta`` device (shapes only, no memory), so the estimate costs next to
nothing: its weights, plus the activations of one forward pass at the batch and size asked for (a training
step keeps most of them for backward; the estimate counts every module's output once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dilnas.utils.errors import UserError
from dilnas.utils.machine import memory_bytes

GIB = 2**30


def machine_bytes(device: torch.device) -> int:
    """The memory of ``device``: the GPU's total, or the machine's physical memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    return memory_bytes()


def estimate_bytes(build: Callable[[], nn.Module], input_shape: Sequence[int] | None) -> tuple[int, int]:
    """(weight bytes, activation bytes of one float32 forward pass on ``input_shape``; 0 without one)."""
    with torch.device("meta"):
        model = build()
    model.eval()  # the same activations; BatchNorm in training mode would refuse a 1x1 input
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    if input_shape is None:
        return weights, 0
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    hooks = [module.register_forward_hook(count) for module in model.modules()]
    try:
        with torch.no_grad():
            model(torch.empty(*input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return weights, total


def check_memory(
    build: Callable[[], nn.Module], input_shape: Sequence[int] | None, device: torch.device, what: str
) -> None:
    """UserError naming what would need how much memory when the estimate exceeds the device's memory."""
    weights, activations = estimate_bytes(build, input_shape)
    available = machine_bytes(device)
    if weights + activations <= available:
        return
    size = f" for input {'x'.join(str(n) for n in input_shape)}" if input_shape is not None else ""
    raise UserError(
        f"{what} would need about {(weights + activations) / GIB:,.1f} GiB (weights {weights / GIB:,.1f} GiB, "
        f"activations {activations / GIB:,.1f} GiB{size}), more than the {available / GIB:,.1f} GiB of this "
        f"{device.type.upper() if device.type == 'cuda' else 'machine'}'s memory: lower the channels, the "
        "batch size or the input size"
    )
