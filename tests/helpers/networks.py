"""Networks for the tests: RegSeg's ablation schedules, and BatchNorm statistics that are not the identity."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

# The dilation schedules of RegSeg's ablations (public reference implementation), 13 blocks at stride 16.
SCHEDULES = {
    "exp30": 5 * [[1, 4]] + 8 * [[1, 10]],
    "exp43": [[1], [1, 2], [1, 4], [1, 6], [1, 8], [1, 10]] + 7 * [[1, 12]],
    "exp46": [[1], [1, 2], [1, 4], [1, 6], [1, 8]] + 8 * [[1, 10]],
    "exp47": [[1], [1, 2], [1, 4], [1, 6], [1, 8], [1, 10], [1, 12]] + 6 * [[1, 14]],
    "exp48": [[1], [1, 2]] + 4 * [[1, 4]] + 7 * [[1, 14]],
    "exp52": [[1], [1, 2], [1, 4]] + 10 * [[1, 6]],
}


def with_schedule(data: dict, schedule: list[list[int]]) -> dict:
    """exp48's macro-architecture with another dilation schedule on its 13 stride-16 blocks."""
    data = copy.deepcopy(data)
    for block, dilations in zip(data["blocks"][-13:], schedule, strict=True):
        block["dilations"] = list(dilations)
    return data


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)


def _onnx_missing() -> bool:
    from dilnas.models.deploy_formats import missing_onnx_packages

    return bool(missing_onnx_packages())


# The ONNX tests need the deploy extra; without it they skip, saying how to install it.
needs_onnx = pytest.mark.skipif(
    _onnx_missing(), reason='needs onnx, onnxscript and onnxruntime (pip install "dilnas[deploy]")'
)
