"""Paired transforms keep image and label aligned, pad with 0 / 255, and are reproducible when seeded.

The image encodes where each pixel came from (channel 0 = source row, channel 1 = source column, channel 2 = 1
for real pixels) and the label encodes the same position (256 + row * width + column), so alignment is checked
pixel by pixel after every geometric transform.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dilnas.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShortSideScale,
    ShortSideResize,
    eval_transform,
    train_transform,
)

HEIGHT, WIDTH = 32, 64


def encoded_pair(height: int = HEIGHT, width: int = WIDTH) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    image = torch.stack([rows, cols, torch.ones(height, width)])
    label = 256 + rows.long() * width + cols.long()
    return image, label


def misalignment(image: torch.Tensor, label: torch.Tensor, width: int = WIDTH) -> torch.Tensor:
    """Per real pixel, how far (in source pixels) the image's position is from the label's."""
    real = label != 255
    source_row, source_col = (label[real] - 256) // width, (label[real] - 256) % width
    return torch.maximum((image[0][real] - source_row).abs(), (image[1][real] - source_col).abs())


def check_padding(image: torch.Tensor, label: torch.Tensor) -> None:
    padded = label == 255
    assert bool((image[:, padded] == 0).all()), "padding must be 0 in the image"
    assert bool((image[2][~padded] > 0.99).all()), "real pixels must stay real"


@pytest.mark.parametrize(("low", "high"), [(8, 20), (40, 90), (32, 32)])
def test_random_scale_draws_the_short_side(low: int, high: int) -> None:
    scale = RandomShortSideScale(low, high, generator=torch.Generator().manual_seed(0))
    short_sides = set()
    for _ in range(10):
        image, label = scale(*encoded_pair())
        assert image.shape[1:] == label.shape and label.dtype == torch.int64 and image.dtype == torch.float32
        assert abs(label.shape[1] / label.shape[0] - WIDTH / HEIGHT) < 0.1  # aspect ratio kept
        short_sides.add(min(label.shape))
    assert short_sides <= set(range(low, high + 1))
    assert len(short_sides) > 1 or low == high


def test_resize_keeps_alignment() -> None:
    """From 4x smaller to 3x larger, odd factors included: image and label sample the same pixel centres."""
    for short_side in (8, 11, 13, 16, 23, 31, 32, 33, 45, 64, 71, 96):
        image, label = ShortSideResize(short_side)(*encoded_pair())
        # Bilinear and nearest both sample at pixel centres: within half a source pixel inside; at the border
        # antialiasing (downscaling) averages over fewer pixels and pulls the value inwards a little more.
        assert float(misalignment(image[:, 2:-2, 2:-2], label[2:-2, 2:-2]).max()) <= 0.5 + 1e-4, short_side
        assert float(misalignment(image, label).max()) < 1.0, short_side


def test_scale_sets_short_side_exactly() -> None:
    image, label = RandomShortSideScale(16, 16)(*encoded_pair())
    assert label.shape == (16, 32) and image.shape == (3, 16, 32)
    _, label = ShortSideResize(24)(*encoded_pair(64, 40))  # portrait: width is the short side
    assert label.shape == (38, 24)


def test_crop_is_an_aligned_window() -> None:
    crop = RandomCrop(16, 24, generator=torch.Generator().manual_seed(1))
    corners = set()
    for _ in range(10):
        image, label = crop(*encoded_pair())
        assert image.shape == (3, 16, 24) and label.shape == (16, 24)
        assert float(misalignment(image, label).max()) == 0.0
        top, left = int(image[0, 0, 0]), int(image[1, 0, 0])
        full_label = encoded_pair()[1]
        assert torch.equal(label, full_label[top : top + 16, left : left + 24])
        corners.add((top, left))
    assert len(corners) > 1


@pytest.mark.parametrize(("height", "width"), [(48, 80), (48, 40), (16, 100)])
def test_crop_pads_small_inputs_with_0_and_255(height: int, width: int) -> None:
    image, label = RandomCrop(height, width, generator=torch.Generator().manual_seed(2))(*encoded_pair())
    assert image.shape == (3, height, width) and label.shape == (height, width)
    check_padding(image, label)
    assert float(misalignment(image, label).max()) == 0.0
    assert int((label != 255).sum()) == min(height, HEIGHT) * min(width, WIDTH)


def test_flip_keeps_alignment() -> None:
    image, label = encoded_pair()
    flipped_image, flipped_label = RandomHorizontalFlip(p=1.0)(image, label)
    assert torch.equal(flipped_label, label.flip(-1)) and torch.equal(flipped_image, image.flip(-1))
    assert float(misalignment(flipped_image, flipped_label).max()) == 0.0
    same_image, same_label = RandomHorizontalFlip(p=0.0)(image, label)
    assert torch.equal(same_image, image) and torch.equal(same_label, label)
    # The checker itself catches a flip applied to one side only.
    assert float(misalignment(flipped_image, label).max()) > 1


def test_flip_probability() -> None:
    flip = RandomHorizontalFlip(p=0.5, generator=torch.Generator().manual_seed(3))
    image, label = encoded_pair()
    flips = sum(bool(flip(image, label)[1][0, 0] != label[0, 0]) for _ in range(200))
    assert 70 < flips < 130


def test_normalize() -> None:
    image, label = torch.rand(3, 4, 5), torch.zeros(4, 5, dtype=torch.int64)
    normalized, same_label = Normalize()(image, label)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(normalized * std + mean, image, atol=1e-6)
    assert same_label is label


def test_train_transform_keeps_alignment_and_pads_with_ignore() -> None:
    transform = train_transform(
        scale_range=(24, 48), crop_size=40, generator=torch.Generator().manual_seed(4)
    )
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    saw_padding = False
    for _ in range(8):
        normalized, label = transform(*encoded_pair())
        assert normalized.shape == (3, 40, 40) and label.shape == (40, 40) and label.dtype == torch.int64
        image = normalized * std + mean
        check_padding(image.round(decimals=4), label)
        saw_padding |= bool((label == 255).any())
        assert float(misalignment(image, label).max()) < 1.0
    assert saw_padding


def test_recipe_defaults() -> None:
    scale, crop, flip, normalize = train_transform().transforms
    assert (scale.min_size, scale.max_size) == (400, 1600)
    assert (crop.height, crop.width) == (768, 768)
    assert flip.p == 0.5
    assert torch.allclose(normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    (only,) = eval_transform().transforms
    assert isinstance(only, Normalize)
    image, label = eval_transform(short_side=16)(*encoded_pair())
    assert image.shape == (3, 16, 32) and label.shape == (16, 32)


def run_pipeline(generator: torch.Generator | None, calls: int = 4) -> list[torch.Tensor]:
    transform = train_transform(scale_range=(20, 60), crop_size=(24, 32), generator=generator)
    outputs = []
    for _ in range(calls):
        image, label = transform(*encoded_pair())
        outputs.append(torch.cat([image.flatten(), label.flatten().float()]))
    return outputs


def test_seeded_generator_is_deterministic() -> None:
    first = run_pipeline(torch.Generator().manual_seed(5))
    again = run_pipeline(torch.Generator().manual_seed(5))
    other = run_pipeline(torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert not all(torch.equal(first[0], later) for later in first[1:])


def test_global_rng_by_default() -> None:
    torch.manual_seed(7)
    first = run_pipeline(None)
    torch.manual_seed(7)
    assert all(torch.equal(a, b) for a, b in zip(first, run_pipeline(None), strict=True))


class _SameSample(Dataset):
    def __init__(self, transform: Compose):
        self.transform = transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*encoded_pair())


def test_dataloader_workers_get_different_randomness() -> None:
    """An explicit generator is copied into each worker; each worker must still draw its own numbers."""
    dataset = _SameSample(train_transform((20, 60), (24, 32), generator=torch.Generator().manual_seed(8)))

    def labels(seed: int) -> list[torch.Tensor]:
        loader = DataLoader(
            dataset, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(seed)
        )
        return [label for _, label in loader]

    first = labels(0)
    # Items 0 and 1 come from different workers, each at its first draw.
    assert not torch.equal(first[0], first[1])
    assert all(torch.equal(a, b) for a, b in zip(first, labels(0), strict=True))  # reproducible
    assert not all(torch.equal(a, b) for a, b in zip(first, labels(1), strict=True))  # a new epoch differs


@pytest.mark.parametrize(
    "build",
    [
        lambda: RandomShortSideScale(0, 10),
        lambda: RandomShortSideScale(20, 10),
        lambda: RandomCrop(0, 10),
        lambda: RandomHorizontalFlip(p=1.5),
        lambda: Normalize(mean=(0.5, 0.5), std=(1.0, 1.0, 1.0)),
        lambda: ShortSideResize(-1),
    ],
)
def test_invalid_arguments(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_mismatched_pair_is_refused() -> None:
    with pytest.raises(ValueError, match="same size"):
        RandomCrop(4, 4)(torch.zeros(3, 8, 8), torch.zeros(8, 9, dtype=torch.int64))


def test_official_padding_crops_augments_then_pads_at_a_random_place_with_the_mean():
    from dilnas.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform

    seen: list[tuple[int, ...]] = []

    def spy(image, label):  # the augmentation: records what it gets
        seen.append(tuple(label.shape))
        assert not (label == 255).any()  # no padding inside: real pixels only
        return image, label

    image, label = torch.full((3, 10, 12), 0.9), torch.zeros(10, 12, dtype=torch.long)
    tops = set()
    for seed in range(12):
        transform = train_transform(
            (10, 10),
            (16, 16),
            flip_p=0.0,
            augment=spy,
            official_padding=True,
            generator=torch.Generator().manual_seed(seed),
        )
        out, out_label = transform(image, label)
        assert out.shape == (3, 16, 16) and out_label.shape == (16, 16)
        content = out_label == 0
        assert int(content.sum()) == 10 * 12  # the whole image, uncropped
        rows = content.any(1).nonzero().flatten()
        tops.add(int(rows[0]))
        expected = (0.9 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
        assert torch.allclose(out[:, content], expected.view(3, 1).expand(3, 120))
        assert torch.allclose(out[:, ~content], torch.zeros(1))  # the mean colour, normalised
        assert (out_label[~content] == 255).all()
    assert seen == [(10, 12)] * 12  # the augmentation never saw the padding
    assert len(tops) > 1  # the content lands at random places, not always at the top left
    seen.clear()
    bottom_right = train_transform((10, 10), (16, 16), flip_p=0.0, augment=spy_padded(seen))
    out, out_label = bottom_right(image, label)
    assert seen == [(16, 16)] and (out_label[:10, :12] == 0).all() and (out_label[10:] == 255).all()


def spy_padded(seen):
    def spy(image, label):
        seen.append(tuple(label.shape))
        return image, label

    return spy


def test_official_padding_keeps_track_of_a_point():
    from dilnas.data.transforms import RandomCrop, RandomPad

    label = torch.arange(10 * 12).view(10, 12)
    image = label[None].float()
    for trial in range(20):
        generator = torch.Generator().manual_seed(trial)
        point = (trial % 12, trial % 10)
        crop = RandomCrop(16, 16, generator=generator, pad=False)
        pad = RandomPad(16, 16, [0.5], generator=generator)
        cropped, cropped_label, moved = crop.with_point(image, label, point)
        assert cropped_label.shape == (10, 12)  # smaller than the crop: kept whole
        padded, padded_label, moved = pad.with_point(cropped, cropped_label, moved)
        assert padded[0, moved[1], moved[0]] == image[0, point[1], point[0]]
        assert padded_label[moved[1], moved[0]] == label[point[1], point[0]]
