"""CamVidDataset on a tiny fake SegNet-layout tree: void -> 255, splits, and clear errors for bad data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dilnas.data.camvid import CamVidDataset
from dilnas.data.common import DataError
from dilnas.data.transforms import train_transform
from tests.helpers.fake_data import raise_one_line


def test_classes() -> None:
    assert CamVidDataset.num_classes == 11
    assert CamVidDataset.class_names == (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )
    assert CamVidDataset.ignore_index == 255


def test_void_becomes_ignore(camvid_root: Path) -> None:
    dataset = CamVidDataset(camvid_root, "train")
    for index, (_, label_path) in enumerate(dataset.files):
        raw = np.array(Image.open(label_path)).astype(np.int64)
        assert set(np.unique(raw)) == set(range(12))
        image, label = dataset[index]
        assert image.dtype == torch.float32 and image.shape == (3, 32, 64)
        assert label.dtype == torch.int64
        np.testing.assert_array_equal(label.numpy(), np.where(raw == 11, 255, raw))


def test_splits(camvid_root: Path) -> None:
    sizes = {split: len(CamVidDataset(camvid_root, split)) for split in ("train", "val", "test", "trainval")}
    assert sizes == {"train": 2, "val": 1, "test": 1, "trainval": 3}
    trainval = CamVidDataset(camvid_root, "trainval")
    assert (
        trainval.files == CamVidDataset(camvid_root, "train").files + CamVidDataset(camvid_root, "val").files
    )
    for image, label in trainval.files:
        assert label == image.parent.parent / f"{image.parent.name}annot" / image.name
    # The test split of CamVid is labelled.
    assert CamVidDataset(camvid_root, "test")[0][1].min() == 0


def test_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    message = raise_one_line(lambda: CamVidDataset(root, "val"), root)
    assert "val/*.png and valannot/*.png" in message


@pytest.mark.parametrize("missing", ["test", "testannot"])
def test_missing_split_directory(camvid_root: Path, missing: str) -> None:
    shutil.rmtree(camvid_root / missing)
    raise_one_line(lambda: CamVidDataset(camvid_root, "test"), camvid_root / missing, "testannot/*.png")


def test_unknown_split(camvid_root: Path) -> None:
    message = raise_one_line(lambda: CamVidDataset(camvid_root, "validation"), "'validation'")
    assert "train, val, test, trainval" in message


def test_split_without_images(camvid_root: Path) -> None:
    for image in (camvid_root / "val").glob("*.png"):
        image.unlink()
    raise_one_line(lambda: CamVidDataset(camvid_root, "trainval"), camvid_root / "val", "no images")


def test_image_without_label(camvid_root: Path) -> None:
    (camvid_root / "trainannot" / "0006R0_f02430.png").unlink()
    raise_one_line(
        lambda: CamVidDataset(camvid_root, "train"),
        camvid_root / "train" / "0006R0_f02430.png",
        camvid_root / "trainannot" / "0006R0_f02430.png",
    )


def test_label_of_another_size(camvid_root: Path, png_writer) -> None:
    dataset = CamVidDataset(camvid_root, "val")
    png_writer(dataset.files[0][1], np.zeros((32, 48), dtype=np.uint8))
    raise_one_line(lambda: dataset[0], dataset.files[0][1], dataset.files[0][0])


def test_corrupt_image(camvid_root: Path) -> None:
    dataset = CamVidDataset(camvid_root, "val")
    dataset.files[0][0].write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    raise_one_line(lambda: dataset[0], dataset.files[0][0])


def test_label_values_outside_the_classes(camvid_root: Path, png_writer) -> None:
    dataset = CamVidDataset(camvid_root, "val")
    values = np.full((32, 64), 11, dtype=np.uint8)
    values[5, 5] = 12
    png_writer(dataset.files[0][1], values)
    raise_one_line(lambda: dataset[0], dataset.files[0][1], "values 12;", "0..10")


def test_sixteen_bit_label(camvid_root: Path) -> None:
    dataset = CamVidDataset(camvid_root, "val")
    values = np.full((32, 64), 3, dtype=np.uint16)
    Image.fromarray(values).save(dataset.files[0][1])
    assert bool((dataset[0][1] == 3).all())
    values[0, 0] = 300
    Image.fromarray(values).save(dataset.files[0][1])
    raise_one_line(lambda: dataset[0], dataset.files[0][1], "300")


def test_a_caching_data_set_decodes_every_file_when_built_and_returns_the_same_samples(
    camvid_root: Path,
) -> None:
    # data.cache: the same augmented samples (the decoding is what is kept, not the transform's output), every
    # PNG decoded when the data set is built (so that forked loader workers share them), and the kept pixels
    # unchanged by whatever a caller does to a sample.
    transform = train_transform((24, 48), (16, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 0.5)
    plain = CamVidDataset(camvid_root, "trainval", transform)

    def sample(dataset: CamVidDataset, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(epoch * 100 + index)
        return dataset[index]

    expected = {(e, i): sample(plain, e, i) for e in range(2) for i in range(len(plain))}
    cached = CamVidDataset(camvid_root, "trainval", transform, cache=True)
    shutil.rmtree(camvid_root)  # nothing read yet: it still reads every sample, from memory
    for epoch in range(2):
        for index in range(len(plain)):
            image, label = sample(cached, epoch, index)
            assert torch.equal(image, expected[epoch, index][0]) and torch.equal(
                label, expected[epoch, index][1]
            )
            assert label.dtype == torch.int64
            image.fill_(7.0)
            label.fill_(3)
    with pytest.raises(DataError, match="cannot read image"):
        plain[0]


def test_a_cache_larger_than_half_the_memory_is_refused_in_one_line(camvid_root: Path, monkeypatch) -> None:
    # The 3 trainval images of 32x64 pixels need 4 bytes a pixel: 24,576 bytes, refused on a 40 kB machine.
    monkeypatch.setattr("dilnas.data.common.memory_bytes", lambda: 40_000)
    message = raise_one_line(lambda: CamVidDataset(camvid_root, "trainval", cache=True), camvid_root)
    assert "data.cache=true would keep the 3 images of split 'trainval'" in message
    assert "leave data.cache=false" in message
    monkeypatch.setattr("dilnas.data.common.memory_bytes", lambda: 60_000)
    assert len(CamVidDataset(camvid_root, "trainval", cache=True)) == 3
