"""A searchable dilation branch: one grouped 3x3 convolution whose rate is a mixture over candidates.

The supernet sets ``mix`` (one weight per candidate, from the architecture logits) before every forward:

- ``softmax``: every candidate is computed and the outputs are summed with the softmax weights;
- ``gumbel``: ``active`` names one sampled candidate; only it is computed. Its straight-through weight
  (value 1, gradient of the soft sample) is applied AFTER the block's BatchNorm, by the
  ``GatedBatchNorm2d`` the supernet installs as that block's ``bn2`` (as GDAS scales each op after its BN).

Why after the norm: in training, BatchNorm divides every channel by its batch standard deviation, so a
scale applied before it cancels; the logits' gradient then survives only through BN's eps (about 1e-4 of
the softmax gradient, proportional to eps, and not even pointing the same way). After the norm the weight's
gradient is how much the loss wants the sampled branch's output amplified (GDAS's one-candidate estimator):
about a tenth of the softmax gradient's size; its mean over samples follows the softmax gradient's direction
once the weights fit the data (after the search's warm-up), not reliably on untrained weights.

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
        # Set by the GatedBatchNorm2d that applies ``straight_through``; without one a sampled forward
        # would silently give the logits no gradient, so it is refused.
        self.gated_after_norm = False

    @property
    def straight_through(self) -> torch.Tensor | None:
        """The sampled candidate's straight-through weight (a 0-d tensor of value 1), or None when mixing."""
        if self.active is None or self.mix is None:
            return None
        return self.mix[self.active]

    def kernel(self, index: int) -> torch.Tensor:
        return self.weights[0 if self.shared_kernel else index]

    def _conv(self, x: torch.Tensor, index: int) -> torch.Tensor:
        rate = self.candidates[index]
        return F.conv2d(x, self.kernel(index), None, self.stride, rate, rate, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise RuntimeError("MixedDilatedConv.mix is unset: run it inside a SuperNet")
        if self.active is not None:
            if not self.gated_after_norm:
                raise RuntimeError(
                    "MixedDilatedConv: a sampled candidate needs a GatedBatchNorm2d after it to carry the "
                    "straight-through weight: run it inside a SuperNet"
                )
            return self._conv(x, self.active)  # unscaled: GatedBatchNorm2d applies the weight
        out = self._conv(x, 0) * self.mix[0]
        for index in range(1, len(self.candidates)):
            out = out + self._conv(x, index) * self.mix[index]
        return out

    def extra_repr(self) -> str:
        return f"candidates={self.candidates}, groups={self.groups}, shared_kernel={self.shared_kernel}"


class GatedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that multiplies each sampled searchable branch's channels by its straight-through
    weight, after normalising.

    ``gates`` pairs a contiguous channel slice with the ``MixedDilatedConv`` producing it. When a conv has
    sampled a candidate (gumbel training), its slice of the output is multiplied by
    ``mixed.straight_through`` (value exactly 1, so the forward is plain BN); otherwise (softmax, evaluation)
    nothing is applied and the output is plain BN's, bit for bit. Parameters and buffers are BatchNorm's
    own, so state-dict keys do not change and checkpoints load either way.
    """

    def __init__(self, norm: nn.BatchNorm2d, gates: Sequence[tuple[slice, MixedDilatedConv]]):
        super().__init__(
            norm.num_features,
            norm.eps,
            norm.momentum,
            norm.affine,
            norm.track_running_stats,
            device=norm.weight.device if norm.affine else None,
        )
        self.load_state_dict(norm.state_dict())
        # A plain list, not submodules: the convs are registered (and saved) under conv2 already.
        self.gates: list[tuple[slice, MixedDilatedConv]] = sorted(gates, key=lambda gate: gate[0].start)
        end = 0
        for channels, mixed in self.gates:
            if not end <= channels.start < channels.stop <= self.num_features:
                raise ValueError(f"gate channels {channels} overlap or leave 0..{self.num_features}")
            end = channels.stop
            mixed.gated_after_norm = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        pieces: list[torch.Tensor] = []
        start = 0
        for channels, mixed in self.gates:
            weight = mixed.straight_through
            if weight is None:
                continue
            pieces.append(out.new_ones(channels.start - start))
            pieces.append(weight.to(out.dtype).expand(channels.stop - channels.start))
            start = channels.stop
        if not pieces:
            return out
        pieces.append(out.new_ones(self.num_features - start))
        return out * torch.cat(pieces).view(1, -1, 1, 1)  # ones elsewhere: other channels pass exactly

    def extra_repr(self) -> str:
        gated = ", ".join(f"{c.start}:{c.stop}" for c, _ in self.gates)
        return f"{super().extra_repr()}, gated_channels=[{gated}]"
