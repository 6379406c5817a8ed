"""Deploy mode: a copy of a RegSeg with every BatchNorm folded into the convolution before it.

Folding is exact in eval mode (BN is then an affine map per channel). A D block's dilated 3x3 has one BN
after the concatenation of its branches; each branch takes its own slice of that BN.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

from dilnas.models.blocks import ConvBnAct, DBlock, DilatedConv, Shortcut, unfolded_norm


def _fold_dilated(dilated: DilatedConv, bn: nn.BatchNorm2d) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: a BatchNorm without running statistics cannot be folded")
    for index, conv in enumerate(dilated.convs):
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"fold_batchnorm: no folding rule for a {type(conv).__name__} branch")
        channels = slice(index * dilated.branch_chs, (index + 1) * dilated.branch_chs)
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight,
            conv.bias,
            bn.running_mean[channels],
            bn.running_var[channels],
            bn.eps,
            bn.weight[channels],
            bn.bias[channels],
        )


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose BatchNorms are folded away (replaced by Identity)."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, ConvBnAct | Shortcut):
            module.conv = fuse_conv_bn_eval(module.conv, unfolded_norm(module.bn))
            module.bn = nn.Identity()
        elif isinstance(module, DBlock):
            module.conv1 = fuse_conv_bn_eval(module.conv1, unfolded_norm(module.bn1))
            _fold_dilated(module.conv2, unfolded_norm(module.bn2))
            module.conv3 = fuse_conv_bn_eval(module.conv3, unfolded_norm(module.bn3))
            module.bn1, module.bn2, module.bn3 = nn.Identity(), nn.Identity(), nn.Identity()
    leftover = [
        name for name, module in model.named_modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]
    if leftover:
        raise TypeError(f"fold_batchnorm: no folding rule for the BatchNorm at {', '.join(leftover)}")
    return model


def deploy_model(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """BN folded, eval mode, parameters frozen, optionally channels_last memory format."""
    model = fold_batchnorm(model)
    model.requires_grad_(False)
    if channels_last:
        # Module.to takes memory_format (documented), but torch's overloads for it leave the keyword out.
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
