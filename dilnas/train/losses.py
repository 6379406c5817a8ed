"""Segmentation losses: cross-entropy and RegSeg's bootstrapped cross-entropy, both ignoring label 255."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dilnas.spec.labels import IGNORE_INDEX
from dilnas.spec.options import LossName
from dilnas.spec.settings import parse_choice


class BootstrappedCrossEntropy(nn.Module):
    """Mean CE over the hard pixels: those with CE above ``threshold``, or the ``top_fraction`` hardest
    pixels of the batch when fewer exceed it (RegSeg: threshold 0.3, K = batch*H*W/16)."""

    def __init__(
        self, threshold: float = 0.3, top_fraction: float = 1 / 16, ignore_index: int = IGNORE_INDEX
    ):
        super().__init__()
        self.threshold, self.top_fraction, self.ignore_index = threshold, top_fraction, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none").flatten()
        k = max(1, int(target.numel() * self.top_fraction))
        hard = losses[losses > self.threshold]
        if hard.numel() < k:
            hard = losses.topk(min(k, losses.numel())).values
        return hard.mean()


def build_loss(name: LossName, threshold: float = 0.3, top_fraction: float = 1 / 16) -> nn.Module:
    if parse_choice(LossName, name, "loss.name") is LossName.ce:
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    return BootstrappedCrossEntropy(threshold, top_fraction)
