"""The built-in synthetic segmentation data: labels that only distant context decides.

Every image holds several hollow square frames (half-size about ``context_distance``) on blurred grey noise.
A frame's thin border is red-ish (class 1) or green-ish (class 2). A closed frame labels its whole square
(border and interior) with its class; an open frame (a gap in one side) stays background. The interior
texture is the background texture, drawn before the borders, so a pixel's neighbourhood says nothing: to
label it a network must see all four sides of its frame, at least ``context_distance * (1 - size_jitter)``
pixels away. Several frames of both colours, open and closed, share every image so that global pooling
(squeeze-and-excitation) cannot decide either (see reference/SEARCH_NOTES.md).

Sample ``i`` of a split is a pure function of (seed, split, i), generated on the fly: nothing on disk, and
DataLoader workers or a resumed run see identical data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from dilnas.data.dataset import LabelledDataset
from dilnas.spec.labels import IGNORE_INDEX
from dilnas.utils.errors import UserError

SPLITS = ("train", "val", "test")
SPLIT_SIZES = {"train": "num_samples", "val": "val_samples", "test": "test_samples"}  # config fields
CLASS_NAMES = ("background", "red", "green")

SIDES = ("top", "bottom", "left", "right")
# Border colours (RGB in [0, 1]) of classes 1 and 2; the background is grey around 0.5.
BORDER_COLOURS = np.array([[0.80, 0.25, 0.30], [0.25, 0.75, 0.30]], dtype=np.float32)
STATS_SAMPLES = 16  # train samples that fix the normalisation constants of a configuration


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines the synthetic data; two equal configs give identical data."""

    image_size: int = 224  # square images
    num_samples: int = 512  # train split
    val_samples: int = 128
    test_samples: int = 128
    context_distance: int = 48  # half-size D of the frames: how far the deciding border lies
    size_jitter: float = 0.15  # half-sizes are drawn from D * [1 - jitter, 1 + jitter]
    frames_per_image: int = 4  # wanted; fewer are placed when no room is left after layout_tries layouts
    layout_tries: int = 8
    border_width: int = 2
    open_fraction: float = 0.4
    gap_fraction: float = 0.4  # an open side's gap, as a fraction of that side's length between the corners
    min_spacing: int = 3  # background pixels between two frames and between a frame and the image edge
    texture_blur: float = 1.5  # sigma (pixels) of the Gaussian that smooths the grey noise
    texture_contrast: float = 0.15  # std of the grey texture
    colour_noise: float = 0.06  # per-pixel std of border colours
    tint_jitter: float = 0.05  # per-frame shift of the border colour
    pixel_noise: float = 0.02  # per-pixel, per-channel noise over the whole image
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def max_half_size(self) -> int:
        return round(self.context_distance * (1 + self.size_jitter))

    @property
    def min_half_size(self) -> int:
        return max(round(self.context_distance * (1 - self.size_jitter)), self.border_width + 1)

    def validate(self) -> None:
        """Raise a one-line UserError naming the first field at fault and what is allowed."""
        _at_least("image_size", self.image_size, 16)
        _at_least("num_samples", self.num_samples, 1)
        _at_least("val_samples", self.val_samples, 1)
        _at_least("test_samples", self.test_samples, 1)
        _at_least("context_distance", self.context_distance, 2)
        _at_least("frames_per_image", self.frames_per_image, 1)
        _at_least("layout_tries", self.layout_tries, 1)
        _at_least("border_width", self.border_width, 1)
        _at_least("min_spacing", self.min_spacing, 0)
        _at_least("seed", self.seed, 0)
        _fraction("size_jitter", self.size_jitter, 0.0, 0.5)
        _fraction("open_fraction", self.open_fraction, 0.0, 1.0)
        _fraction("gap_fraction", self.gap_fraction, 0.05, 1.0)
        for name in ("texture_blur", "texture_contrast", "colour_noise", "tint_jitter", "pixel_noise"):
            _fraction(name, getattr(self, name), 0.0, math.inf)
        smallest = round(self.context_distance * (1 - self.size_jitter))
        if self.border_width >= smallest:
            raise UserError(
                f"data.border_width={self.border_width} leaves no interior in frames of half-size {smallest} "
                f"(data.context_distance={self.context_distance}): border_width must be below {smallest}"
            )
        needed = 2 * self.max_half_size + 1 + 2 * self.min_spacing
        if needed > self.image_size:
            raise UserError(
                f"data.context_distance={self.context_distance} does not fit data.image_size={self.image_size}: "
                f"frames need 2*round(D*(1+size_jitter))+1+2*min_spacing = {needed} pixels"
            )


def _at_least(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"data.{name}={value!r} is not allowed: an integer >= {low} is required")


def _fraction(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        allowed = f"a number >= {low}" if high == math.inf else f"a number in [{low}, {high}]"
        raise UserError(f"data.{name}={value!r} is not allowed: {allowed} is required")


@dataclass(frozen=True)
class Frame:
    """One hollow square covering rows top..top+size-1 and columns left..left+size-1."""

    top: int
    left: int
    half_size: int
    class_index: int  # 1 red, 2 green
    open_side: str | None  # one of SIDES, or None for a closed frame
    gap: tuple[int, int]  # [start, stop) offsets of the gap along the open side; (0, 0) when closed

    @property
    def size(self) -> int:
        return 2 * self.half_size + 1

    @property
    def closed(self) -> bool:
        return self.open_side is None

    def box(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.size), slice(self.left, self.left + self.size)

    def interior(self, border_width: int) -> tuple[slice, slice]:
        rows, cols = self.box()
        return (
            slice(rows.start + border_width, rows.stop - border_width),
            slice(cols.start + border_width, cols.stop - border_width),
        )

    def border_mask(self, border_width: int) -> np.ndarray:
        """(size, size) boolean mask of the border pixels, the gap left out."""
        b, mask = border_width, np.zeros((self.size, self.size), dtype=bool)
        mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = True, True, True, True
        along = slice(*self.gap)
        across = slice(None, b) if self.open_side in ("top", "left") else slice(-b, None)
        if self.open_side in ("top", "bottom"):
            mask[across, along] = False
        elif self.open_side in ("left", "right"):
            mask[along, across] = False
        return mask


class SyntheticSample(NamedTuple):
    """A raw sample: image (3, H, W) float32 before normalisation, label (H, W) int64, the frames."""

    image: np.ndarray
    label: np.ndarray
    frames: tuple[Frame, ...]


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-std uniform noise: several times cheaper to draw than Gaussian noise."""
    return (rng.random(shape, dtype=np.float32) - np.float32(0.5)) * np.float32(math.sqrt(12))


def _blurred_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Stationary Gaussian-smoothed white noise with unit std: noise drawn larger, so no edge effects."""
    radius = math.ceil(3 * sigma)
    noise = _unit_noise(rng, (size + 2 * radius, size + 2 * radius))
    if radius == 0:
        return noise
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    rows = kernel[0] * noise[:size]  # separable blur as shifted sums: (size, size + 2r), then (size, size)
    for tap in range(1, kernel.size):
        rows += kernel[tap] * noise[tap : tap + size]
    smooth = kernel[0] * rows[:, :size]
    for tap in range(1, kernel.size):
        smooth += kernel[tap] * rows[:, tap : tap + size]
    return smooth / np.float32(np.sum(kernel**2))  # the std of a separable blur of unit noise is sum(k^2)


def _free_corners(free: np.ndarray) -> np.ndarray:
    """Free positions blocked (by a frame or the image edge) on one vertical and one horizontal side."""
    vertical = np.ones_like(free)  # blocked above or below (the first and last rows touch the edge)
    vertical[1:-1] = ~free[:-2] | ~free[2:]
    horizontal = np.ones_like(free)
    horizontal[:, 1:-1] = ~free[:, :-2] | ~free[:, 2:]
    return free & vertical & horizontal


def _try_layout(config: SyntheticConfig, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """One sequential layout: the first frame anywhere, later ones in a corner of the free region (packs)."""
    placed: list[tuple[int, int, int]] = []
    size, spacing = config.image_size, config.min_spacing
    for _ in range(config.frames_per_image):
        half = int(rng.integers(config.min_half_size, config.max_half_size + 1))
        extent = 2 * half + 1
        positions = size - 2 * spacing - extent + 1  # top-left choices per axis, offset by spacing
        free = np.ones((positions, positions), dtype=bool)
        for top, left, other_half in placed:
            # A new frame at t (index t - spacing) is too close on an axis when
            # p - extent - spacing < t < p + other + spacing; blocked only when too close on both.
            other = 2 * other_half + 1
            rows = slice(max(top - extent - 2 * spacing + 1, 0), max(top + other, 0))
            cols = slice(max(left - extent - 2 * spacing + 1, 0), max(left + other, 0))
            free[rows, cols] = False
        if placed:
            free = _free_corners(free)
        choices = np.flatnonzero(free)
        if choices.size == 0:
            continue  # no room left for this one
        row, col = divmod(int(choices[rng.integers(choices.size)]), positions)
        placed.append((row + spacing, col + spacing, half))
    return placed


def _place_frames(config: SyntheticConfig, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Non-overlapping (top, left, half_size): the fullest of up to ``layout_tries`` random layouts."""
    best: list[tuple[int, int, int]] = []
    for _ in range(config.layout_tries):
        layout = _try_layout(config, rng)
        if len(layout) > len(best):
            best = layout
        if len(best) == config.frames_per_image:
            break
    return best  # never empty: validation guarantees that the first frame fits


def _assign_frames(
    config: SyntheticConfig, rng: np.random.Generator, placed: list[tuple[int, int, int]]
) -> tuple[Frame, ...]:
    """Balanced colours, and open frames at the configured rate with both kinds present when possible."""
    count = len(placed)
    classes = rng.permutation(np.arange(count) % 2 + 1)
    if rng.random() < 0.5:
        classes = 3 - classes  # an odd count must not always favour red
    num_open = math.floor(config.open_fraction * count + rng.random())
    if count >= 2 and 0 < config.open_fraction < 1:
        num_open = min(max(num_open, 1), count - 1)
    is_open = np.zeros(count, dtype=bool)
    is_open[rng.permutation(count)[:num_open]] = True
    frames = []
    for (top, left, half), class_index, opened in zip(placed, classes, is_open, strict=True):
        side, gap = None, (0, 0)
        if opened:
            side = SIDES[int(rng.integers(4))]
            between = 2 * half + 1 - 2 * config.border_width  # the side's length between the corners
            length = min(max(2, round(config.gap_fraction * between)), between)
            start = config.border_width + int(rng.integers(between - length + 1))
            gap = (start, start + length)
        frames.append(Frame(top, left, half, int(class_index), side, gap))
    return tuple(frames)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"split={split!r} is unknown: allowed are {', '.join(SPLITS)}")


def generate_sample(config: SyntheticConfig, split: str, index: int) -> SyntheticSample:
    """Sample ``index`` of ``split``: a pure function of (config, split, index)."""
    _check_split(split)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, SPLITS.index(split), index]))
    size, b = config.image_size, config.border_width
    # Texture first, everywhere: frame interiors and the background share one distribution.
    grey = 0.5 + config.texture_contrast * _blurred_noise(rng, size, config.texture_blur)
    image = np.repeat(grey[None], 3, axis=0)
    image += config.pixel_noise * _unit_noise(rng, (3, size, size))
    label = np.zeros((size, size), dtype=np.int64)
    frames = _assign_frames(config, rng, _place_frames(config, rng))
    for frame in frames:
        rows, cols = frame.box()
        mask = frame.border_mask(b)
        colour = BORDER_COLOURS[frame.class_index - 1] + config.tint_jitter * rng.uniform(-1, 1, 3)
        noise = config.colour_noise * _unit_noise(rng, (3, int(mask.sum())))
        view = image[:, rows, cols]  # a view: writing into it paints the image
        view[:, mask] = colour.astype(np.float32)[:, None] + noise
        if frame.closed:
            label[rows, cols] = frame.class_index
    return SyntheticSample(image.astype(np.float32, copy=False), label, frames)


@lru_cache(maxsize=16)
def channel_statistics(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of raw images, from the first train samples; every split uses these."""
    images = np.stack([generate_sample(config, "train", i).image for i in range(STATS_SAMPLES)])
    mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
    std = images.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(np.float32), std.astype(np.float32)


class SyntheticDataset(LabelledDataset):
    """A split of the synthetic data, returning (image, label) like the real loaders."""

    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    ignore_index = IGNORE_INDEX

    def __init__(self, config: SyntheticConfig, split: str):
        _check_split(split)
        self.config, self.split = config, split
        self.length: int = getattr(config, SPLIT_SIZES[split])
        mean, std = channel_statistics(config)
        self._mean, self._std = mean[:, None, None], std[:, None, None]

    def __len__(self) -> int:
        return self.length

    def generate(self, index: int) -> SyntheticSample:
        """The raw sample with its frames, for tests and figures."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.split} split of {self.length} samples")
        return generate_sample(self.config, self.split, index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.generate(index)
        image = (sample.image - self._mean) / self._std  # (3, H, W), about zero mean and unit std
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(sample.label)


def label_statistics(dataset: SyntheticDataset, num_images: int = 64) -> dict[str, float]:
    """What the first images hold: frames per image, open share, class shares, interior share of labels."""
    frames, opened, counts, interior = 0, 0, np.zeros(len(CLASS_NAMES)), 0
    for index in range(min(num_images, len(dataset))):
        sample = dataset.generate(index)
        frames += len(sample.frames)
        opened += sum(not frame.closed for frame in sample.frames)
        counts += np.bincount(sample.label.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
        for frame in sample.frames:
            if frame.closed:
                rows, cols = frame.interior(dataset.config.border_width)
                interior += (rows.stop - rows.start) * (cols.stop - cols.start)
    images = min(num_images, len(dataset))
    stats = {"frames_per_image": frames / images, "open_fraction": opened / max(frames, 1)}
    stats |= {f"pixels/{name}": float(c / counts.sum()) for name, c in zip(CLASS_NAMES, counts, strict=True)}
    stats["interior_share_of_labels"] = float(interior / max(counts[1:].sum(), 1))
    return stats
