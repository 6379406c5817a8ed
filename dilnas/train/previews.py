"""What the network predicts, as a picture for TensorBoard: a few evaluation images, each beside its ground
truth and the network's prediction, both drawn over the image in the classes' colours
(``dilnas.data.palettes``: true colours where the class names say them, the background transparent), under
column titles and above a legend of the classes.

The same first samples of the evaluation set at every evaluation (no augmentation there), so the pictures of a
run can be compared step by step; a handful of forward passes, never a pass over the data. The trainer does
not know how the images were normalised, so each image is shown with every channel stretched to its own range:
the same picture for any per-channel normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn
from torch.utils.data import Dataset

from dilnas.data.palettes import legend_image, overlay, palette_for, transparent_classes
from dilnas.train.sampling import dataset_length

PANEL_HEIGHT = 256  # taller images are scaled down (the event file would grow by megabytes per evaluation)
GAP = 4  # white pixels between panels and rows
HEADER_HEIGHT = 14  # the column titles' row
COLUMN_TITLES = ("image", "ground truth", "prediction")
ALPHA = 0.6  # opacity of the class colours over the image


@torch.no_grad()
def prediction_panels(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str],
    device: torch.device,
    count: int = 4,
    height: int = PANEL_HEIGHT,
    colours: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray | None:
    """An (H, W, 3) uint8 image: the column titles, then one row per sample of the first ``count`` of
    ``dataset``: image | ground truth | prediction of ``model`` (evaluated in eval mode, its mode restored
    after), then the legend, in the data's own ``colours`` if it has them; None without samples."""
    palette = palette_for(len(class_names), class_names=class_names, colours=colours)
    transparent = transparent_classes(class_names)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for index in range(min(count, dataset_length(dataset))):
            image, label = dataset[index]  # (3, H, W) normalised, (H, W) class ids or 255
            prediction = model(image[None].to(device)).argmax(1)[0].cpu()  # (H, W)
            rows.append(_row(image, label, prediction, palette, transparent, height))
    finally:
        model.train(was_training)
    if not rows:
        return None
    body = _stack(rows, axis=0)
    panel_width = (body.shape[1] - 2 * GAP) // 3
    legend = legend_image(class_names, palette, transparent, width=body.shape[1])
    return _stack([_titles(panel_width), body, legend], axis=0)


def _titles(panel_width: int) -> np.ndarray:
    """The column titles over panels ``panel_width`` wide."""
    width = 3 * panel_width + 2 * GAP
    header = Image.new("RGB", (width, HEADER_HEIGHT), "white")
    draw = ImageDraw.Draw(header)
    for column, title in enumerate(COLUMN_TITLES):
        draw.text((column * (panel_width + GAP) + 2, 1), title, fill=(0, 0, 0))
    return np.asarray(header)


def display_image(image: torch.Tensor) -> np.ndarray:
    """An (H, W, 3) uint8 picture of a normalised (3, H, W) image: each channel stretched to [0, 255]."""
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    scaled = (image - low) / (high - low).clamp_min(1e-6)
    return (scaled * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _row(
    image: torch.Tensor,
    label: torch.Tensor,
    prediction: torch.Tensor,
    palette: np.ndarray,
    transparent: tuple[int, ...],
    height: int,
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
    picture = display_image(image.float().cpu())
    panels = [
        picture,
        *(overlay(picture, ids.numpy(), palette, ALPHA, transparent) for ids in (label, prediction)),
    ]
    return _stack(panels, axis=1)


def _stack(parts: list[np.ndarray], axis: int) -> np.ndarray:
    """``parts`` side by side (axis 1) or one above the other (axis 0), with white gaps; shorter or narrower
    parts padded with white."""
    across = 1 - axis
    extent = max(part.shape[across] for part in parts)
    padded = []
    for number, part in enumerate(parts):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[across] = (0, extent - part.shape[across])
        padded.append(np.pad(part, pad, constant_values=255))
        if number < len(parts) - 1:
            gap_shape = [extent, extent, 3]
            gap_shape[axis] = GAP
            padded.append(np.full(gap_shape, 255, dtype=np.uint8))
    return np.concatenate(padded, axis=axis)
