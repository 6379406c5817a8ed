"""RandAugment for segmentation, the "reduced" op set of RegSeg's official Cityscapes recipe (``data.augment=
randaug_reduced``).

Each call draws ``num_ops`` (2) distinct ops from {auto_contrast, equalize, rotate, color, contrast,
brightness, sharpness} and applies them in the drawn order at one fixed ``magnitude`` (0.2), each with a random
sign: rotate by +/- magnitude * 30 degrees (6), the four enhancements by a factor 1 +/- magnitude * 0.9 (1.18 or
0.82); auto_contrast and equalize have no magnitude. Photometric ops leave the label alone; rotate warps the
image (bilinear, the uncovered corners filled with ``fill``, the normalisation mean so that they become 0 after
``Normalize``) and the label (nearest, uncovered pixels 255 = ignored) with the same rotation.

The ops follow Pillow's definitions (``ImageOps.autocontrast``, ``ImageOps.equalize``, ``Image.rotate``,
``ImageEnhance.Color/Contrast/Brightness/Sharpness``, which the official code calls) on float tensors in
[0, 1], without rounding to 8 bits (equalize excepted: it needs the 256-bin histogram). Randomness: the
generator given at construction or torch's global RNG (the default), as the other transforms
(``dilnas.data.transforms``), so ``SeededAugmentation`` makes every sample's draw reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dilnas.data.transforms import IMAGENET_MEAN, _check_pair, _draw_from
from dilnas.spec.labels import IGNORE_INDEX

REDUCED_OPS = ("auto_contrast", "equalize", "rotate", "color", "contrast", "brightness", "sharpness")
ENHANCEMENTS = ("color", "contrast", "brightness", "sharpness")
MAX_ROTATE_DEGREES = 30.0  # rotate's value at magnitude 1
MAX_ENHANCE = 0.9  # the enhancements' distance from factor 1 at magnitude 1
# ITU-R 601-2 luma, Pillow's RGB -> L conversion (the grey image of color and contrast).
_LUMA = (0.299, 0.587, 0.114)


class RandAugment:
    """``num_ops`` distinct ops drawn per call from ``ops``, at ``magnitude`` in [0, 1], with a random sign."""

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 0.2,
        ops: Sequence[str] = REDUCED_OPS,
        fill: Sequence[float] = IMAGENET_MEAN,
        label_fill: int = IGNORE_INDEX,
        generator: torch.Generator | None = None,
    ):
        unknown = sorted(set(ops) - set(REDUCED_OPS))
        if unknown:
            raise ValueError(f"RandAugment: unknown ops {unknown}; expected some of {', '.join(REDUCED_OPS)}")
        if not 1 <= num_ops <= len(ops):
            raise ValueError(f"RandAugment: num_ops must be in [1, {len(ops)}], got {num_ops!r}")
        if not 0.0 <= magnitude <= 1.0:
            raise ValueError(f"RandAugment: magnitude must be in [0, 1], got {magnitude!r}")
        self.num_ops, self.magnitude, self.ops = num_ops, magnitude, tuple(ops)
        self.fill, self.label_fill, self.generator = tuple(fill), label_fill, generator

    def draw(self) -> list[tuple[str, float]]:
        """The ops of one call with their values: degrees for rotate, the factor for an enhancement, 0.0 for
        auto_contrast and equalize. Always the same number of random draws, whichever ops come out."""
        generator = _draw_from(self.generator)
        chosen = torch.randperm(len(self.ops), generator=generator)[: self.num_ops].tolist()
        signs = torch.rand(self.num_ops, generator=generator).tolist()
        drawn = []
        for index, sign_draw in zip(chosen, signs, strict=True):
            name = self.ops[index]
            sign = -1.0 if sign_draw < 0.5 else 1.0
            if name == "rotate":
                value = sign * self.magnitude * MAX_ROTATE_DEGREES
            elif name in ENHANCEMENTS:
                value = 1.0 + sign * self.magnitude * MAX_ENHANCE
            else:
                value = 0.0
            drawn.append((name, value))
        return drawn

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_pair(image, label, "RandAugment")
        for name, value in self.draw():
            image, label = apply_op(name, value, image, label, self.fill, self.label_fill)
        return image, label

    def __repr__(self) -> str:
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, ops={list(self.ops)})"


def apply_op(
    name: str,
    value: float,
    image: torch.Tensor,
    label: torch.Tensor,
    fill: Sequence[float] = IMAGENET_MEAN,
    label_fill: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One op on an image (C, H, W) in [0, 1] and its label (H, W); only ``rotate`` changes the label."""
    if name == "rotate":
        return rotate(image, label, value, fill, label_fill)
    if name == "auto_contrast":
        return auto_contrast(image), label
    if name == "equalize":
        return equalize(image), label
    if name == "color":
        return _blend(image, _grey(image), value), label
    if name == "contrast":
        return _blend(image, _grey(image).mean(), value), label
    if name == "brightness":
        return _blend(image, torch.zeros(()), value), label
    if name == "sharpness":
        return _blend(image, _smooth(image), value), label
    raise ValueError(f"unknown RandAugment op {name!r}; expected one of {', '.join(REDUCED_OPS)}")


def _blend(image: torch.Tensor, degenerate: torch.Tensor, factor: float) -> torch.Tensor:
    """Pillow's ImageEnhance: ``degenerate`` at factor 0, the image at 1, extrapolated beyond; clipped."""
    return (degenerate + factor * (image - degenerate)).clamp_(0.0, 1.0)


def _grey(image: torch.Tensor) -> torch.Tensor:
    """The (1, H, W) luma of an RGB image (the image itself when it has one channel)."""
    if image.shape[0] != 3:
        return image.mean(0, keepdim=True)
    weights = torch.tensor(_LUMA, dtype=image.dtype).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True)


def _smooth(image: torch.Tensor) -> torch.Tensor:
    """Pillow's SMOOTH filter (3x3, centre 5, the rest 1, over 13) inside a one-pixel border kept as is."""
    channels, height, width = image.shape
    if height < 3 or width < 3:
        return image
    kernel = torch.ones(3, 3, dtype=image.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smoothed = image.clone()
    smoothed[:, 1:-1, 1:-1] = F.conv2d(image[None], kernel, groups=channels)[0]
    return smoothed


def auto_contrast(image: torch.Tensor) -> torch.Tensor:
    """Stretch every channel so that its darkest pixel becomes 0 and its brightest 1 (flat channels stay)."""
    low = image.amin(dim=(-2, -1), keepdim=True)
    high = image.amax(dim=(-2, -1), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, torch.ones_like(high), 1.0 / (high - low).clamp_min(1e-12))
    low = torch.where(flat, torch.zeros_like(low), low)
    return ((image - low) * scale).clamp_(0.0, 1.0)


def equalize(image: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of every channel over 256 levels, Pillow's lookup table."""
    levels = (image * 255.0).round_().clamp_(0, 255).to(torch.int64)
    channels = []
    for channel in levels:
        histogram = torch.bincount(channel.flatten(), minlength=256)
        used = histogram[histogram > 0]
        step = int(used[:-1].sum()) // 255  # every pixel except those of the last used level
        if step == 0:
            channels.append(channel)
            continue
        before = torch.cumsum(histogram, 0) - histogram  # pixels below each level
        table = ((before + step // 2) // step).clamp_(0, 255)
        channels.append(table[channel])
    return torch.stack(channels).to(image.dtype) / 255.0


def rotate(
    image: torch.Tensor,
    label: torch.Tensor,
    degrees: float,
    fill: Sequence[float] = IMAGENET_MEAN,
    label_fill: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate both about the image centre by ``degrees`` counter-clockwise (Pillow's direction), keeping the
    size: the image bilinearly with ``fill`` where no input pixel lands, the label by nearest neighbour with
    ``label_fill`` there."""
    height, width = label.shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # Pixel centres relative to the image centre; each output pixel reads the input at the inverse rotation.
    ys = torch.arange(height, dtype=torch.float32) + 0.5 - height / 2
    xs = torch.arange(width, dtype=torch.float32) + 0.5 - width / 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    source_x, source_y = cos * x - sin * y, sin * x + cos * y
    # grid_sample's coordinates with align_corners=False: -1 and 1 are the outer edges of the border pixels.
    grid = torch.stack((source_x * (2 / width), source_y * (2 / height)), dim=-1)[None]
    background = torch.tensor(fill, dtype=image.dtype).view(-1, 1, 1)
    # Rotating (image - fill) with zero padding and adding fill back puts fill outside, blended at the border.
    rotated = F.grid_sample(
        (image - background)[None], grid.to(image.dtype), mode="bilinear", align_corners=False
    )
    image = (rotated[0] + background).clamp_(0.0, 1.0)
    # Labels shifted by one so that 0 marks "outside" after zero padding; float32 is exact for ids < 2**24.
    shifted = (label + 1).to(torch.float32)[None, None]
    moved = F.grid_sample(shifted, grid, mode="nearest", align_corners=False)[0, 0].to(torch.int64)
    label = torch.where(moved == 0, torch.full_like(moved, label_fill), moved - 1)
    return image, label
