"""Tiny fake Cityscapes and CamVid trees (32x64 PNGs) written with Pillow, and the check that bad data is refused
in one line. The fixtures that write the trees into tmp_path are in tests/data/conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dilnas.data.common import DataError
from dilnas.utils.errors import UserError

HEIGHT, WIDTH = 32, 64

# (split, city, name) of every fake Cityscapes image; test images have no label.
CITYSCAPES_FILES = (
    ("train", "aachen", "aachen_000000_000019"),
    ("train", "aachen", "aachen_000001_000019"),
    ("train", "bremen", "bremen_000000_000019"),
    ("val", "frankfurt", "frankfurt_000000_000294"),
    ("test", "berlin", "berlin_000000_000019"),
)
CAMVID_FILES = (
    ("train", "0001TP_006690"),
    ("train", "0006R0_f02430"),
    ("val", "0016E5_07959"),
    ("test", "Seq05VD_f00000"),
)


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def random_image(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def cycling_label(seed: int, num_ids: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Every id in 0..num_ids-1 appears (the pattern shifts with the seed)."""
    positions = np.arange(height * width).reshape(height, width)
    return ((positions + seed) % num_ids).astype(np.uint8)


# Cityscapes label ids of the 19 train ids, in train-id order (cityscapesScripts); 0 (unlabeled) is ignored.
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
BLOB_TRAIN_IMAGES = 40  # enough for int(40 * 0.5 / 19) = 1 centroid sample per class and epoch


def blob_classes(index: int) -> tuple[int, int]:
    """The two train ids drawn in fake image ``index`` (every class appears in 2 or 3 of 40 images)."""
    return index % 19, (index + 5) % 19


def blob_label(index: int, height: int = 24, width: int = 48, background: int = 0) -> np.ndarray:
    """Label ids: ``background`` (0: unlabeled, ignored) but for two 5x6 blobs of ``blob_classes(index)``."""
    first, second = blob_classes(index)
    label = np.full((height, width), background, dtype=np.uint8)
    left = 2 + 3 * (index % 4)
    label[2:7, left : left + 6] = CITYSCAPES_LABEL_IDS[first]
    label[height - 7 : height - 2, width - 8 - 2 * (index % 3) : width - 2 - 2 * (index % 3)] = (
        CITYSCAPES_LABEL_IDS[second]
    )
    return label


def write_blob_tree(root: Path, background: int = 0) -> Path:
    """A fake Cityscapes tree of 40 train images (24x48) with two small class blobs each, and 1 val image."""
    for index in range(BLOB_TRAIN_IMAGES + 1):
        split, city = ("train", "aachen") if index < BLOB_TRAIN_IMAGES else ("val", "frankfurt")
        name = f"{city}_{index:06d}_000019"
        write_png(
            root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", random_image(index, 24, 48)
        )
        label = blob_label(index, background=background)
        write_png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", label)
    return root


def write_camvid_tree(root: Path) -> Path:
    """A fake CamVid tree (SegNet layout, ids 0..11 with 11 void) of ``CAMVID_FILES`` under ``root``."""
    for seed, (split, name) in enumerate(CAMVID_FILES):
        write_png(root / split / f"{name}.png", random_image(seed))
        write_png(root / f"{split}annot" / f"{name}.png", cycling_label(seed, num_ids=12))
    return root


def raise_one_line(call, *names: Path | str) -> str:
    """Run ``call``, expect a DataError whose single-line message names each of ``names``."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, message
    return message
