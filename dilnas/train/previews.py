"""What the network predicts, as a picture for TensorBoard: a few evaluation images, each beside its ground
truth and the network's prediction, colour-coded with the palette of the class count
(``dilnas.data.palettes``).

The same first samples of the evaluation set at every evaluation (no augmentation there), so the pictures of a
run can be compared step by step; a handful of forward passes, never a pass over the data. The trainer does
not know how the images were normalised, so each image is shown with every channel stretched to its own range:
the same picture for any per-channel normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from dilnas.data.palettes import colourize, palette_for
from dilnas.train.sampling import dataset_length

PANEL_HEIGHT = 256  # taller images are scaled down (the event file would grow by megabytes per evaluation)
GAP = 4  # white pixels between panels and rows


@torch.no_grad()
def prediction_panels(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    device: torch.device,
    count: int = 4,
    height: int = PANEL_HEIGHT,
) -> np.ndarray | None:
    """An (H, W, 3) uint8 image, one row per sample of the first ``count`` of ``dataset``: image | ground
    truth | prediction of ``model`` (evaluated in eval mode, its mode restored after); None without samples."""
    palette = palette_for(num_classes)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for index in range(min(count, dataset_length(dataset))):
            image, label = dataset[index]  # (3, H, W) normalised, (H, W) class ids or 255
            prediction = model(image[None].to(device)).argmax(1)[0].cpu()  # (H, W)
            rows.append(_row(image, label, prediction, palette, height))
    finally:
        model.train(was_training)
    return _stack(rows, axis=0) if rows else None


def display_image(image: torch.Tensor) -> np.ndarray:
    """An (H, W, 3) uint8 picture of a normalised (3, H, W) image: each channel stretched to [0, 255]."""
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    scaled = (image - low) / (high - low).clamp_min(1e-6)
    return (scaled * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _row(
    image: torch.Tensor, label: torch.Tensor, prediction: torch.Tensor, palette: np.ndarray, height: int
) -> np.ndarray:
    """image | ground truth | prediction, scaled to at most ``height`` pixels high."""
    image_height, image_width = label.shape
    if image_height > height:
        size = (height, max(1, round(image_width * height / image_height)))
        image = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)[0]
        label, prediction = (
            F.interpolate(ids[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
            for ids in (label, prediction)
        )
    panels = [
        display_image(image.float().cpu()),
        *(colourize(ids.numpy(), palette) for ids in (label, prediction)),
    ]
    return _stack(panels, axis=1)


def _stack(parts: list[np.ndarray], axis: int) -> np.ndarray:
    """``parts`` side by side (axis 1) or one above the other (axis 0), with white gaps; shorter or narrower
    parts padded with black."""
    across = 1 - axis
    extent = max(part.shape[across] for part in parts)
    padded = []
    for number, part in enumerate(parts):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[across] = (0, extent - part.shape[across])
        padded.append(np.pad(part, pad))
        if number < len(parts) - 1:
            gap_shape = [extent, extent, 3]
            gap_shape[axis] = GAP
            padded.append(np.full(gap_shape, 255, dtype=np.uint8))
    return np.concatenate(padded, axis=axis)
