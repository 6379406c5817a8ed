"""RegSeg building blocks (Gao, arXiv 2111.09957), one documented class each.

Attribute names follow the public RegSeg implementation (conv1/bn1/..., se.conv1, shortcut.conv) so that
its released checkpoints map onto these modules key by key (see ``dilnas.models.official``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# A block's BatchNorm, or the nn.Identity that ``dilnas.models.deploy`` leaves once it has folded it.
FoldableNorm = nn.BatchNorm2d | nn.Identity


def unfolded_norm(norm: FoldableNorm) -> nn.BatchNorm2d:
    """``norm``, which must not have been folded yet."""
    if not isinstance(norm, nn.BatchNorm2d):
        raise TypeError(f"expected a BatchNorm2d, got {type(norm).__name__} (a BatchNorm folded already)")
    return norm


class ConvBnAct(nn.Module):
    """Convolution without bias, BatchNorm, optional ReLU."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        act: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn: FoldableNorm = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Channel gate: global average pool, 1x1 (with bias) to ``squeeze_chs``, ReLU, 1x1 back, sigmoid.

    RegSeg squeezes to a quarter of the block's INPUT width, not its output width. ``pool_by_kernel``: the
    average as an average pool whose kernel is the whole map (the same numbers; an ONNX ``AveragePool`` of a
    fixed size, which onnxruntime runs in INT8, where the mean becomes a float ``ReduceMean``).
    """

    pool_by_kernel = False

    def __init__(self, chs: int, squeeze_chs: int):
        super().__init__()
        self.conv1 = nn.Conv2d(chs, squeeze_chs, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(squeeze_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_by_kernel:
            gate = F.avg_pool2d(x, kernel_size=(x.shape[2], x.shape[3]))
        else:
            gate = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        gate = torch.sigmoid(self.conv2(self.act(self.conv1(gate))))
        return x * gate


class Shortcut(nn.Module):
    """Projection shortcut: 2x2 average pool (ceil mode) when strided, then 1x1 conv and BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.avg = nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn: FoldableNorm = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.avg(x)))


class DilatedConv(nn.Module):
    """Grouped 3x3 convolution whose channels are split into equal contiguous branches, one rate each.

    Each branch is its own grouped conv (``branch_chs / group_width`` groups, padding = dilation); the
    branch outputs are concatenated in order. Rates change neither parameters nor multiply-accumulates.
    """

    def __init__(
        self, chs: int, dilations: tuple[int, ...], group_width: int, stride: int, bias: bool = False
    ):
        super().__init__()
        branch_chs = chs // len(dilations)
        self.branch_chs = branch_chs
        self.convs = nn.ModuleList(
            nn.Conv2d(
                branch_chs,
                branch_chs,
                3,
                stride=stride,
                padding=rate,
                dilation=rate,
                groups=branch_chs // group_width,
                bias=bias,
            )
            for rate in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        branches = x.split(self.branch_chs, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, branches, strict=True)], dim=1)


class DBlock(nn.Module):
    """RegSeg's D block.

    1x1 in->out, BN, ReLU; dilated grouped 3x3 (carries the stride), BN, ReLU; SE; 1x1, BN;
    add the shortcut (identity, or pool+1x1+BN); ReLU.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        dilations: tuple[int, ...],
        group_width: int,
        stride: int,
        se: bool = True,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn1: FoldableNorm = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = DilatedConv(out_chs, tuple(dilations), group_width, stride)
        self.bn2: FoldableNorm = nn.BatchNorm2d(out_chs)  # GatedBatchNorm2d in a supernet
        self.act2 = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(out_chs, in_chs // 4) if se else nn.Identity()
        self.conv3 = nn.Conv2d(out_chs, out_chs, 1, bias=False)
        self.bn3: FoldableNorm = nn.BatchNorm2d(out_chs)
        self.act3 = nn.ReLU(inplace=True)
        self.shortcut = (
            Shortcut(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))  # spatial size / stride
        x = self.se(x)
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)
