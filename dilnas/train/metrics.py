"""Confusion-matrix segmentation metrics (mIoU, mIoU^R and per-class IoU), all-reducible across processes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dilnas.data.cityscapes import CLASS_NAMES as CITYSCAPES_CLASSES
from dilnas.spec.labels import IGNORE_INDEX

REDUCED_EXCLUDED = ("truck", "bus", "train")  # RegSeg's mIoU^R leaves out these rare Cityscapes classes


class ConfusionMatrix:
    """Accumulates a (classes x classes) matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        # Optional: the summed per-pixel cross-entropy over the labelled pixels (``add_loss``).
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.loss_pixels = torch.zeros((), dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        keep = target != IGNORE_INDEX
        indices = target[keep].to(torch.int64) * self.num_classes + prediction[keep].to(torch.int64)
        self.matrix += torch.bincount(indices, minlength=self.num_classes**2).view_as(self.matrix)

    @torch.no_grad()
    def add_loss(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate the cross-entropy of ``logits`` over the labelled pixels of ``target``."""
        self.loss_sum += F.cross_entropy(
            logits.float(), target.long(), ignore_index=IGNORE_INDEX, reduction="sum"
        ).double()
        self.loss_pixels += (target != IGNORE_INDEX).sum()

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)
            torch.distributed.all_reduce(self.loss_sum)
            torch.distributed.all_reduce(self.loss_pixels)

    def loss(self) -> float | None:
        """The mean per-pixel cross-entropy accumulated by ``add_loss`` (None when nothing was)."""
        pixels = int(self.loss_pixels)
        return float(self.loss_sum) / pixels if pixels else None

    def iou(self) -> torch.Tensor:
        """Per-class IoU; NaN for a class that appears in neither ground truth nor prediction."""
        matrix = self.matrix.double()
        true_positive = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        return true_positive / union  # 0/0 -> NaN: absent classes do not count in the mean

    def miou(self) -> float:
        return float(self.iou().nanmean()) * 100.0

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.matrix.diag().sum() / total) * 100.0 if total else float("nan")

    def miou_reduced(self, class_names: Sequence[str]) -> float | None:
        """RegSeg's ablation metric mIoU^R: the mIoU without truck, bus and train, for Cityscapes' 19 classes
        (None for other class sets)."""
        if tuple(class_names) != CITYSCAPES_CLASSES:
            return None
        keep = [index for index, name in enumerate(class_names) if name not in REDUCED_EXCLUDED]
        return float(self.iou()[keep].nanmean()) * 100.0

    def summary(self, class_names: Sequence[str]) -> dict:
        """``miou``, ``pixel_accuracy``, per-class ``iou`` (None for an absent class), ``miou_reduced``
        for Cityscapes' classes, and the mean cross-entropy ``loss`` when ``add_loss`` accumulated one."""
        ious = self.iou().tolist()
        reduced = self.miou_reduced(class_names)
        loss = self.loss()
        return {
            "miou": self.miou(),
            **({"miou_reduced": reduced} if reduced is not None else {}),
            "pixel_accuracy": self.pixel_accuracy(),
            **({"loss": loss} if loss is not None else {}),
            "iou": {
                name: (None if value != value else value * 100.0)
                for name, value in zip(class_names, ious, strict=True)
            },
        }
