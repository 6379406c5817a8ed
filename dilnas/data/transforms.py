"""Paired transforms for segmentation: every geometric change is applied to the image and its label together.

Each transform is a small callable ``(image, label) -> (image, label)`` on tensors: image float (C, H, W),
label int64 (H, W) with 255 = ignore; ``CheckedTransform`` gives them one ``__call__`` that checks the pair
and calls the transform's ``apply``. ``train_transform`` builds the RegSeg recipe (random short side in
[400, 1600], random 768x768 crop padded with 0 / 255, horizontal flip, optionally RandAugment
(``dilnas.data.randaugment``), ImageNet normalisation); normalisation comes last so that crop padding is black in
the original image.

Class-uniform sampling crops around a point: ``Compose.around(image, label, point)`` runs the same steps, but
the transforms that move pixels (``PointTransform``: scale, crop, flip) carry the point (x, y) along, and the
random crop is placed so that it contains it.

Randomness: a random transform draws from the ``torch.Generator`` given at construction, or from torch's global
RNG when none is given (the default, and what a training run should use). DataLoader seeds the global RNG of
every worker differently (its base seed, fresh for every epoch's iterator, plus the worker id), so the default
needs nothing more. An explicit generator would be copied unchanged into every worker (the same augmentation in
all workers, and every epoch, since the parent's copy never advances), so inside a worker it is replaced by a
generator seeded from the generator's own seed and the worker's seed; transforms that shared a generator share
its replacement. Runs stay reproducible and workers differ.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info

from dilnas.spec.labels import IGNORE_INDEX

PairTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Point = tuple[int, int]  # (x, y): column and row of a pixel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# id(generator given at construction) -> (worker seed, the generator used for it in this worker process).
_worker_generators: dict[int, tuple[int, torch.Generator]] = {}


def _draw_from(generator: torch.Generator | None) -> torch.Generator | None:
    """The generator to draw from now: ``generator`` itself, or its per-worker replacement in a worker."""
    info = get_worker_info()
    if generator is None or info is None:
        return generator
    cached = _worker_generators.get(id(generator))
    if cached is None or cached[0] != info.seed:
        seed = np.random.SeedSequence([generator.initial_seed(), info.seed]).generate_state(1, np.uint64)[0]
        cached = (info.seed, torch.Generator().manual_seed(int(seed)))
        _worker_generators[id(generator)] = cached
    return cached[1]


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [low, high], both ends included."""
    return int(torch.randint(low, high + 1, (1,), generator=_draw_from(generator)).item())


def _check_pair(image: torch.Tensor, label: torch.Tensor, name: str) -> None:
    if image.dim() != 3 or label.dim() != 2 or image.shape[-2:] != label.shape:
        raise ValueError(
            f"{name}: expected image (C, H, W) and label (H, W) of the same size, "
            f"got {tuple(image.shape)} and {tuple(label.shape)}"
        )


def _resize_pair(
    image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear (antialiased) for the image, nearest for the label, both sampling at pixel centres."""
    if tuple(label.shape) == size:
        return image, label
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    # "nearest-exact" samples at pixel centres like bilinear with align_corners=False; plain "nearest" is
    # shifted by up to one source pixel. Labels go through float32, exact for values below 2**24.
    label = F.interpolate(label[None, None].to(torch.float32), size=size, mode="nearest-exact")[0, 0]
    return image, label.to(torch.int64)


def _short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to ``short_side`` and the aspect ratio kept."""
    if height <= width:
        return short_side, max(1, round(width * short_side / height))
    return max(1, round(height * short_side / width)), short_side


def _positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")


def _scale_point(point: Point, old: tuple[int, int], new: tuple[int, int]) -> Point:
    """The pixel of a (height, width) = ``new`` resize of an ``old`` image that holds ``point``'s centre."""
    (x, y), (old_height, old_width), (new_height, new_width) = point, old, new
    return (
        min(new_width - 1, int((x + 0.5) * new_width / old_width)),
        min(new_height - 1, int((y + 0.5) * new_height / old_height)),
    )


class CheckedTransform(ABC):
    """A paired transform: calling it checks that image and label match, then ``apply`` does the work.

    The one ``__call__`` of every transform here, so that each states only what it does and every one refuses
    a mismatched pair with the same message (named after its class).
    """

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_pair(image, label, type(self).__name__)
        return self.apply(image, label)

    @abstractmethod
    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The transform of a checked pair."""


class PointTransform(CheckedTransform):
    """A transform that moves pixels and can say where a given pixel went (``with_point``).

    Subclasses write ``move``; calling the transform is ``move`` with the point dropped, unless a subclass
    draws differently without a point (``RandomCrop``) and overrides ``apply``.
    """

    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, label, _ = self.move(image, label, (0, 0))
        return image, label

    def with_point(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        """Like calling it (same random draws), and ``point`` (x, y) of the input in the output's pixels."""
        _check_pair(image, label, type(self).__name__)
        return self.move(image, label, point)

    @abstractmethod
    def move(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        """The transform of a checked pair, and where ``point`` went."""


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[PairTransform]):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for transform in self.transforms:
            image, label = transform(image, label)
        return image, label

    def around(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like calling it, with ``point`` (x, y) of the input followed through the transforms that move pixels,
        so that a random crop contains it (class-uniform sampling). Transforms after the crop may move it again
        (RandAugment's rotation); only the crop needs it."""
        for transform in self.transforms:
            if isinstance(transform, PointTransform):
                image, label, point = transform.with_point(image, label, point)
            else:
                image, label = transform(image, label)
        return image, label

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomShortSideScale(PointTransform):
    """Resize so that the short side is a uniform random integer in [min_size, max_size] (RegSeg: 400..1600)."""

    def __init__(self, min_size: int, max_size: int, generator: torch.Generator | None = None):
        _positive("RandomShortSideScale", min_size=min_size, max_size=max_size)
        if min_size > max_size:
            raise ValueError(f"RandomShortSideScale: min_size {min_size} is larger than max_size {max_size}")
        self.min_size = min_size
        self.max_size = max_size
        self.generator = generator

    def move(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        short_side = _randint(self.min_size, self.max_size, self.generator)
        height, width = label.shape
        size = _short_side_size(height, width, short_side)
        image, label = _resize_pair(image, label, size)
        return image, label, _scale_point(point, (height, width), size)

    def __repr__(self) -> str:
        return f"RandomShortSideScale(min_size={self.min_size}, max_size={self.max_size})"


class ShortSideResize(CheckedTransform):
    """Deterministic resize of the short side to ``size`` (evaluation at a reduced resolution)."""

    def __init__(self, size: int):
        _positive("ShortSideResize", size=size)
        self.size = size

    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = label.shape
        return _resize_pair(image, label, _short_side_size(height, width, self.size))

    def __repr__(self) -> str:
        return f"ShortSideResize(size={self.size})"


class Resize(CheckedTransform):
    """Deterministic resize to ``height`` x ``width``, aspect ratio not kept (a network's fixed input size)."""

    def __init__(self, height: int, width: int):
        _positive("Resize", height=height, width=width)
        self.size = (height, width)

    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _resize_pair(image, label, self.size)

    def __repr__(self) -> str:
        return f"Resize(height={self.size[0]}, width={self.size[1]})"


class RandomCrop(PointTransform):
    """Crop a random ``height`` x ``width`` window; a smaller input is first padded at the bottom and right
    (``pad=True``) or the window shrinks to the input (``pad=False``: the official RegSeg order, which pads
    afterwards with ``RandomPad``).

    Padding is ``image_fill`` (0) in the image and ``label_fill`` (255, ignored by the loss) in the label.
    ``with_point`` places the window at random among those that contain the point (clamped to the image).
    """

    def __init__(
        self,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        image_fill: float = 0.0,
        label_fill: int = IGNORE_INDEX,
        pad: bool = True,
    ):
        _positive("RandomCrop", height=height, width=width)
        self.height = height
        self.width = width
        self.generator = generator
        self.image_fill = image_fill
        self.label_fill = label_fill
        self.pad = pad

    def window(self, label: torch.Tensor) -> tuple[int, int]:
        """The (height, width) cut from ``label``'s input: the crop, or the input where it is smaller and
        nothing is padded first."""
        height, width = label.shape
        return (self.height, self.width) if self.pad else (min(self.height, height), min(self.width, width))

    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self._pad(image, label)
        height, width = label.shape
        crop_height, crop_width = self.window(label)
        top = _randint(0, height - crop_height, self.generator)
        left = _randint(0, width - crop_width, self.generator)
        rows, cols = slice(top, top + crop_height), slice(left, left + crop_width)
        return image[:, rows, cols], label[rows, cols]

    def move(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        image, label = self._pad(image, label)
        height, width = label.shape
        crop_height, crop_width = self.window(label)
        x, y = point
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"RandomCrop: point {point} lies outside the {width}x{height} input")
        # Every window that contains the point is equally likely before clamping to the image (RegSeg's
        # centroid crop); clamping keeps it inside, since the point itself is.
        top = min(max(_randint(y - crop_height + 1, y, self.generator), 0), height - crop_height)
        left = min(max(_randint(x - crop_width + 1, x, self.generator), 0), width - crop_width)
        rows, cols = slice(top, top + crop_height), slice(left, left + crop_width)
        return image[:, rows, cols], label[rows, cols], (x - left, y - top)

    def _pad(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.pad:
            return image, label
        height, width = label.shape
        pad_bottom, pad_right = max(0, self.height - height), max(0, self.width - width)
        if pad_bottom or pad_right:
            image = F.pad(image, (0, pad_right, 0, pad_bottom), value=self.image_fill)
            label = F.pad(label, (0, pad_right, 0, pad_bottom), value=self.label_fill)
        return image, label

    def __repr__(self) -> str:
        return f"RandomCrop(height={self.height}, width={self.width})"


class RandomPad(PointTransform):
    """Pad to ``height`` x ``width`` at a random position (the official RegSeg order: after the crop and the
    augmentation, so these only ever see real pixels): ``image_fill`` per channel (the mean colour, 0 once
    normalised) in the image, ``label_fill`` (255, ignored) in the label."""

    def __init__(
        self,
        height: int,
        width: int,
        image_fill: Sequence[float],
        generator: torch.Generator | None = None,
        label_fill: int = IGNORE_INDEX,
    ):
        _positive("RandomPad", height=height, width=width)
        self.height, self.width = height, width
        self.image_fill = list(image_fill)
        self.generator, self.label_fill = generator, label_fill

    def move(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        height, width = label.shape
        extra_rows, extra_cols = max(0, self.height - height), max(0, self.width - width)
        # Always draw, so the stream of random numbers does not depend on whether this sample needs a pad.
        top, left = _randint(0, extra_rows, self.generator), _randint(0, extra_cols, self.generator)
        if not (extra_rows or extra_cols):
            return image, label, point
        fill = torch.tensor(self.image_fill, dtype=image.dtype).view(-1, 1, 1)
        padded = fill.expand(image.shape[0], height + extra_rows, width + extra_cols).clone()
        padded[:, top : top + height, left : left + width] = image
        padded_label = torch.full(
            (height + extra_rows, width + extra_cols), self.label_fill, dtype=label.dtype
        )
        padded_label[top : top + height, left : left + width] = label
        return padded, padded_label, (point[0] + left, point[1] + top)

    def __repr__(self) -> str:
        return f"RandomPad(height={self.height}, width={self.width})"


class RandomHorizontalFlip(PointTransform):
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = p
        self.generator = generator

    def move(
        self, image: torch.Tensor, label: torch.Tensor, point: Point
    ) -> tuple[torch.Tensor, torch.Tensor, Point]:
        # Always draw, so the stream of random numbers does not depend on p.
        if torch.rand(1, generator=_draw_from(self.generator)).item() < self.p:
            return image.flip(-1), label.flip(-1), (label.shape[-1] - 1 - point[0], point[1])
        return image, label, point

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize(CheckedTransform):
    """Per-channel ``(image - mean) / std`` (ImageNet statistics by default); the label passes through."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        if len(mean) != len(std) or any(value <= 0 for value in std):
            raise ValueError(f"Normalize: need one positive std per mean, got mean={mean!r} std={std!r}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def apply(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[0] != self.mean.shape[0]:
            raise ValueError(
                f"Normalize: image has {image.shape[0]} channels, mean/std have {self.mean.shape[0]}"
            )
        return (image - self.mean.to(image)) / self.std.to(image), label

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(
    scale_range: tuple[int, int] = (400, 1600),
    crop_size: int | tuple[int, int] = (768, 768),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
    augment: PairTransform | None = None,
    official_padding: bool = False,
) -> Compose:
    """The RegSeg training augmentation: random short side, random crop (height, width), flip, ``augment``
    (e.g. ``dilnas.data.randaugment.RandAugment``) when given, normalise.

    A sample smaller than the crop is padded black at the bottom right before the crop, or, with
    ``official_padding`` (the official RegSeg order), cropped to at most its size, augmented, then padded at a
    random position with the mean colour."""
    crop_height, crop_width = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    min_size, max_size = scale_range
    extra = [] if augment is None else [augment]
    if official_padding:
        extra.append(RandomPad(crop_height, crop_width, mean, generator=generator))
    return Compose(
        [
            RandomShortSideScale(min_size, max_size, generator=generator),
            RandomCrop(crop_height, crop_width, generator=generator, pad=not official_padding),
            RandomHorizontalFlip(flip_p, generator=generator),
            *extra,
            Normalize(mean, std),
        ]
    )


def eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> Compose:
    """Evaluation: normalise only (RegSeg evaluates at full resolution), or first resize the short side (or
    the whole image to ``size``, (height, width): a network's fixed input size).

    With ``short_side`` the label is resized too (nearest), so the metric is computed at that resolution.
    """
    steps: list[PairTransform] = [] if short_side is None else [ShortSideResize(short_side)]
    if size is not None:
        steps.append(Resize(*size))
    return Compose([*steps, Normalize(mean, std)])
