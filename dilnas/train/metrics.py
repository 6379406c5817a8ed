"""Confusion-matrix segmentation metrics (mIoU and per-class IoU), all-reducible across processes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dilnas.spec.labels import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a (classes x classes) matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu"):
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        keep = target != IGNORE_INDEX
        indices = target[keep].to(torch.int64) * self.num_classes + prediction[keep].to(torch.int64)
        self.matrix += torch.bincount(indices, minlength=self.num_classes**2).view_as(self.matrix)

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)

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

    def summary(self, class_names: Sequence[str]) -> dict:
        ious = self.iou().tolist()
        return {
            "miou": self.miou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "iou": {
                name: (None if value != value else value * 100.0)
                for name, value in zip(class_names, ious, strict=True)
            },
        }
