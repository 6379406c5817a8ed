"""The synthetic data: deterministic, well formed, and labelled so that only distant context decides."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from dilnas.data.synthetic import (
    CLASS_NAMES,
    SyntheticConfig,
    SyntheticDataset,
    generate_sample,
    label_statistics,
)
from dilnas.utils.errors import UserError

DEFAULT = SyntheticConfig(image_size=128, context_distance=24)  # small and quick
FAR = SyntheticConfig(image_size=192, context_distance=40)


def expected_label(sample, size: int) -> np.ndarray:
    label = np.zeros((size, size), dtype=np.int64)
    for frame in sample.frames:
        if frame.closed:
            label[frame.box()] = frame.class_index
    return label


def test_same_seed_split_index_gives_identical_tensors():
    first, second = (
        SyntheticDataset(DEFAULT, "train"),
        SyntheticDataset(dataclasses.replace(DEFAULT), "train"),
    )
    _ = second[7]  # order of access must not matter: each sample has its own generator
    for index in (0, 3, 511):
        image_a, label_a = first[index]
        image_b, label_b = second[index]
        assert torch.equal(image_a, image_b)
        assert torch.equal(label_a, label_b)


def test_splits_and_seeds_differ():
    images = [SyntheticDataset(DEFAULT, split)[0][0] for split in ("train", "val", "test")]
    images.append(SyntheticDataset(dataclasses.replace(DEFAULT, seed=1), "train")[0][0])
    for a, b in itertools.combinations(images, 2):
        assert not torch.equal(a, b)
    dataset = SyntheticDataset(DEFAULT, "val")
    assert not torch.equal(dataset[0][0], dataset[1][0])


def test_items_look_like_the_real_loaders():
    dataset = SyntheticDataset(DEFAULT, "train")
    assert len(dataset) == DEFAULT.num_samples
    assert len(SyntheticDataset(DEFAULT, "val")) == DEFAULT.val_samples
    assert len(SyntheticDataset(DEFAULT, "test")) == DEFAULT.test_samples
    assert dataset.num_classes == 3
    assert dataset.class_names == ("background", "red", "green")
    assert dataset.ignore_index == 255
    images, labels = zip(*(dataset[i] for i in range(16)), strict=True)
    for image, label in zip(images, labels, strict=True):
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        assert label.shape == (128, 128) and label.dtype == torch.int64
        assert set(label.unique().tolist()) <= {0, 1, 2}
    stacked = torch.stack(images)
    assert stacked.mean(dim=(0, 2, 3)).abs().max() < 0.1  # normalised per channel
    assert ((stacked.std(dim=(0, 2, 3)) - 1).abs() < 0.1).all()
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_frames_fit_the_image_and_do_not_touch():
    dataset = SyntheticDataset(DEFAULT, "train")
    size, spacing = DEFAULT.image_size, DEFAULT.min_spacing
    for index in range(64):
        frames = dataset.generate(index).frames
        assert len(frames) >= 3  # the defaults leave room for several frames
        for frame in frames:
            assert DEFAULT.min_half_size <= frame.half_size <= DEFAULT.max_half_size
            assert spacing <= frame.top and frame.top + frame.size <= size - spacing
            assert spacing <= frame.left and frame.left + frame.size <= size - spacing
        for a, b in itertools.combinations(frames, 2):
            apart_rows = a.top + a.size + spacing <= b.top or b.top + b.size + spacing <= a.top
            apart_cols = a.left + a.size + spacing <= b.left or b.left + b.size + spacing <= a.left
            assert apart_rows or apart_cols
        # Both colours, open and closed, in every image: global pooling must not decide a frame.
        assert {frame.class_index for frame in frames} == {1, 2}
        assert {frame.closed for frame in frames} == {True, False}


def test_closed_frames_take_their_class_and_open_frames_stay_background():
    dataset = SyntheticDataset(DEFAULT, "val")
    opened = total = 0
    for index in range(64):
        sample = dataset.generate(index)
        np.testing.assert_array_equal(sample.label, expected_label(sample, DEFAULT.image_size))
        for frame in sample.frames:
            total += 1
            opened += not frame.closed
            view = sample.image[:, frame.box()[0], frame.box()[1]]
            mask = frame.border_mask(DEFAULT.border_width)
            red, green = view[0][mask], view[1][mask]
            # The border's colour names its class at every border pixel...
            assert ((red > green) if frame.class_index == 1 else (green > red)).all()
            # ...and an open frame really has a gap in its border.
            full = (frame.size**2) - (frame.size - 2 * DEFAULT.border_width) ** 2
            assert (mask.sum() < full) == (not frame.closed)
    assert 0.3 < opened / total < 0.5


def test_interior_texture_matches_the_background():
    dataset = SyntheticDataset(DEFAULT, "val")
    inside, outside = [], []
    for index in range(32):
        sample = dataset.generate(index)
        grey = sample.image.mean(axis=0)
        in_closed = np.zeros(grey.shape, dtype=bool)
        in_any = np.zeros(grey.shape, dtype=bool)
        for frame in sample.frames:
            in_any[frame.box()] = True
            if frame.closed:
                in_closed[frame.interior(DEFAULT.border_width)] = True
        inside.append(grey[in_closed])
        outside.append(grey[~in_any])
    inside_values, outside_values = np.concatenate(inside), np.concatenate(outside)
    assert abs(inside_values.mean() - outside_values.mean()) < 0.01
    assert abs(inside_values.std() / outside_values.std() - 1) < 0.05
    # Interior pixels are grey: their colour alone does not say red or green.
    assert abs(inside_values.mean() - 0.5) < 0.02


def test_labels_need_context_about_context_distance_away():
    dataset = SyntheticDataset(FAR, "train")
    labelled = interior = far_from_border = 0
    for index in range(16):
        sample = dataset.generate(index)
        for frame in sample.frames:
            if not frame.closed:
                continue
            rows, cols = np.indices((frame.size, frame.size))
            border_rows, border_cols = np.nonzero(frame.border_mask(FAR.border_width))
            # Chebyshev distance from every pixel of the square to its farthest border pixel: a network
            # must see that far to know that no side has a gap.
            probe_rows, probe_cols = rows[::3, ::3].ravel(), cols[::3, ::3].ravel()  # every 9th pixel: fast
            farthest = np.maximum(
                np.abs(probe_rows[:, None] - border_rows[None]),
                np.abs(probe_cols[:, None] - border_cols[None]),
            ).max(axis=1)
            assert farthest.min() >= FAR.min_half_size >= 0.8 * FAR.context_distance
            to_edge = np.minimum.reduce([rows, cols, frame.size - 1 - rows, frame.size - 1 - cols])
            nearest_border = np.maximum(to_edge - (FAR.border_width - 1), 0)
            labelled += frame.size**2
            interior += (nearest_border > 0).sum()
            far_from_border += (nearest_border > FAR.context_distance / 4).sum()
    assert interior / labelled > 0.85  # interiors, whose own colour says nothing, dominate the labels
    # About half the labels lie farther than D/4 from any border (a square's core; D/2 would leave ~25%).
    assert far_from_border / labelled > 0.4


def test_label_statistics_summarise_the_split():
    stats = label_statistics(SyntheticDataset(DEFAULT, "train"), 16)
    assert stats["frames_per_image"] >= 3
    assert sum(stats[f"pixels/{name}"] for name in CLASS_NAMES) == pytest.approx(1.0)
    assert stats["interior_share_of_labels"] > 0.75


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image_size": 8}, "data.image_size=8"),
        ({"context_distance": 1}, "data.context_distance=1"),
        ({"frames_per_image": 0}, "data.frames_per_image=0"),
        ({"num_samples": 0}, "data.num_samples=0"),
        ({"val_samples": -1}, "data.val_samples=-1"),
        ({"open_fraction": 1.5}, "data.open_fraction=1.5"),
        ({"size_jitter": 0.9}, "data.size_jitter=0.9"),
        ({"texture_blur": -1.0}, "data.texture_blur=-1.0"),
        ({"seed": -3}, "data.seed=-3"),
        ({"border_width": 10, "context_distance": 10}, "data.border_width=10"),
        (
            {"context_distance": 80, "image_size": 128},
            "data.context_distance=80 does not fit data.image_size=128",
        ),
    ],
)
def test_bad_configs_name_the_field(overrides, field):
    with pytest.raises(UserError, match=field) as caught:
        SyntheticConfig(**overrides)
    assert "\n" not in str(caught.value)


def test_unknown_split_is_a_user_error():
    with pytest.raises(UserError, match=r"split='training'.*train, val, test"):
        SyntheticDataset(DEFAULT, "training")
    with pytest.raises(UserError, match="split="):
        generate_sample(DEFAULT, "dev", 0)


def test_the_largest_frame_that_fits_is_always_placed():
    # D=50 at 128 px: only one frame fits; it must be there in every image, never an empty image.
    config = SyntheticConfig(image_size=128, context_distance=50, size_jitter=0.1, min_spacing=2)
    for index in range(8):
        assert len(generate_sample(config, "test", index).frames) == 1
