"""A searchable dilation branch: one grouped 3x3 convolution whose rate is a mixture over candidates.

The supernet sets ``mix`` (one weight per candidate, from the architecture logits) before every forward:

- ``softmax``: every candidate is computed and the outputs are summed with the softmax weights;
- ``gumbel``: ``active`` names one sampled candidate; only it is computed, scaled by its straight-through
  weight (value 1, gradient of the soft sample), so the logits still get a gradient.

By default the candidates share ONE kernel (only the dilation differs), so the derived network inherits it
exactly; ``shared_kernel=False`` gives each candidate its own kernel (DARTS-style).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MixedDilatedConv(nn.Module):
    """Grouped 3x3 conv (no bias) over ``chs`` channels with a searchable dilation rate."""

    def __init__(
        self,
        chs: int,
        candidates: Sequence[int],
        group_width: int,
        stride: int = 1,
        shared_kernel: bool = True,
    ):
        super().__init__()
        self.candidates = tuple(candidates)
        self.groups = chs // group_width
        self.stride = stride
        self.shared_kernel = shared_kernel
        shape = (chs, group_width, 3, 3)
        count = 1 if shared_kernel else len(self.candidates)
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(shape)) for _ in range(count))
        for weight in self.weights:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's default
        self.mix: torch.Tensor | None = None  # (len(candidates),) set by the supernet
        self.active: int | None = None  # gumbel: the one candidate to compute

    def kernel(self, index: int) -> torch.Tensor:
        return self.weights[0 if self.shared_kernel else index]

    def _conv(self, x: torch.Tensor, index: int) -> torch.Tensor:
        rate = self.candidates[index]
        return F.conv2d(x, self.kernel(index), None, self.stride, rate, rate, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise RuntimeError("MixedDilatedConv.mix is unset: run it inside a SuperNet")
        if self.active is not None:
            return self._conv(x, self.active) * self.mix[self.active]
        out = self._conv(x, 0) * self.mix[0]
        for index in range(1, len(self.candidates)):
            out = out + self._conv(x, index) * self.mix[index]
        return out

    def extra_repr(self) -> str:
        return f"candidates={self.candidates}, groups={self.groups}, shared_kernel={self.shared_kernel}"
