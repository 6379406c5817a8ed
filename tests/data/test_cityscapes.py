"""CityscapesDataset on a tiny fake tree: id mapping, splits, and one clear error per kind of bad data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dilnas.data.cityscapes import CityscapesDataset
from tests.helpers.fake_data import raise_one_line

# The official cityscapesScripts table, written out independently of the module under test.
OFFICIAL_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


def expected_train_ids(raw: np.ndarray) -> np.ndarray:
    table = np.full(34, 255, dtype=np.int64)
    for label_id, train_id in OFFICIAL_TRAIN_IDS.items():
        table[label_id] = train_id
    return table[raw]


def test_classes() -> None:
    assert CityscapesDataset.num_classes == 19
    assert len(CityscapesDataset.class_names) == 19
    assert CityscapesDataset.class_names[:3] == ("road", "sidewalk", "building")
    assert CityscapesDataset.class_names[-1] == "bicycle"
    assert CityscapesDataset.ignore_index == 255


def test_label_ids_map_to_train_ids(cityscapes_root: Path) -> None:
    dataset = CityscapesDataset(cityscapes_root, "train")
    for index, (_, label_path) in enumerate(dataset.files):
        raw = np.array(Image.open(label_path))
        assert set(np.unique(raw)) == set(range(34))  # the fixture covers every id
        _, label = dataset[index]
        assert label.dtype == torch.int64 and label.shape == raw.shape
        np.testing.assert_array_equal(label.numpy(), expected_train_ids(raw))
    assert set(label.unique().tolist()) == set(range(19)) | {255}


def test_image_is_float_in_unit_range(cityscapes_root: Path) -> None:
    dataset = CityscapesDataset(cityscapes_root, "val")
    image, _ = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 64)
    pixels = np.array(Image.open(dataset.files[0][0]))
    np.testing.assert_allclose(image.numpy(), pixels.transpose(2, 0, 1) / 255, atol=1e-6)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_splits(cityscapes_root: Path) -> None:
    train = CityscapesDataset(cityscapes_root, "train")
    val = CityscapesDataset(cityscapes_root, "val")
    trainval = CityscapesDataset(cityscapes_root, "trainval")
    assert (len(train), len(val), len(trainval)) == (3, 1, 4)
    assert trainval.files == train.files + val.files
    assert [image.parent.name for image, _ in train.files] == ["aachen", "aachen", "bremen"]
    for image, label in trainval.files:
        assert label is not None
        assert label.name == image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        assert label.parent.name == image.parent.name


def test_test_split_has_no_labels(cityscapes_root: Path) -> None:
    # No gtFine/test at all: the test split needs only the images.
    dataset = CityscapesDataset(str(cityscapes_root), "test")
    assert [label for _, label in dataset.files] == [None]
    image, label = dataset[0]
    assert image.shape == (3, 32, 64)
    assert label.dtype == torch.int64 and label.shape == (32, 64) and bool((label == 255).all())


def test_transform_is_applied(cityscapes_root: Path) -> None:
    calls = []

    def transform(image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((image.shape, label.shape))
        return image[:, :8], label[:8]

    image, label = CityscapesDataset(cityscapes_root, "val", transform=transform)[0]
    assert calls == [((3, 32, 64), (32, 64))]
    assert image.shape == (3, 8, 64) and label.shape == (8, 64)


def test_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    message = raise_one_line(lambda: CityscapesDataset(root, "train"), root)
    assert "leftImg8bit/train/<city>/*_leftImg8bit.png" in message
    assert "gtFine/train/<city>/*_gtFine_labelIds.png" in message


@pytest.mark.parametrize("missing", ["leftImg8bit/val", "gtFine/val"])
def test_missing_split_directory(cityscapes_root: Path, missing: str) -> None:
    shutil.rmtree(cityscapes_root / missing)
    message = raise_one_line(
        lambda: CityscapesDataset(cityscapes_root, "trainval"), cityscapes_root / missing
    )
    assert "leftImg8bit/val/<city>/*_leftImg8bit.png" in message


def test_unknown_split(cityscapes_root: Path) -> None:
    message = raise_one_line(lambda: CityscapesDataset(cityscapes_root, "training"), "'training'")
    assert "train, val, test, trainval" in message


def test_split_without_images(cityscapes_root: Path) -> None:
    image_dir = cityscapes_root / "leftImg8bit" / "val"
    for image in image_dir.glob("*/*.png"):
        image.unlink()
    raise_one_line(lambda: CityscapesDataset(cityscapes_root, "val"), image_dir, "no images")


def test_image_without_label(cityscapes_root: Path) -> None:
    label = cityscapes_root / "gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png"
    label.unlink()
    image = cityscapes_root / "leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png"
    raise_one_line(lambda: CityscapesDataset(cityscapes_root, "train"), image, label)


def test_label_of_another_size(cityscapes_root: Path, png_writer) -> None:
    dataset = CityscapesDataset(cityscapes_root, "val")
    image, label = dataset.files[0]
    png_writer(label, np.zeros((16, 64), dtype=np.uint8))
    raise_one_line(lambda: dataset[0], label, image, "64x16", "64x32")


@pytest.mark.parametrize("which", [0, 1])
def test_corrupt_file(cityscapes_root: Path, which: int) -> None:
    dataset = CityscapesDataset(cityscapes_root, "val")
    path = dataset.files[0][which]
    path.write_bytes(path.read_bytes()[:60])  # truncated: a PNG header and no complete pixel data
    raise_one_line(lambda: dataset[0], path)
    path.write_bytes(b"this is not a PNG")
    raise_one_line(lambda: dataset[0], path)


def test_label_values_outside_the_ids(cityscapes_root: Path, png_writer) -> None:
    dataset = CityscapesDataset(cityscapes_root, "val")
    label = dataset.files[0][1]
    values = np.full((32, 64), 7, dtype=np.uint8)
    values[0, :3] = (34, 200, 255)
    png_writer(label, values)
    message = raise_one_line(lambda: dataset[0], label, "34, 200, 255")
    assert "0..33" in message


def test_colour_label_is_refused(cityscapes_root: Path, png_writer) -> None:
    dataset = CityscapesDataset(cityscapes_root, "val")
    label = dataset.files[0][1]
    png_writer(label, np.zeros((32, 64, 3), dtype=np.uint8))
    raise_one_line(lambda: dataset[0], label, "'RGB'")
