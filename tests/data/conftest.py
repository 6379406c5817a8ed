"""Tiny fake Cityscapes and CamVid trees (32x64 PNGs) written with Pillow into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


@pytest.fixture
def png_writer() -> Callable[[Path, np.ndarray], Path]:
    return write_png


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    for seed, (split, city, name) in enumerate(CITYSCAPES_FILES):
        write_png(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", random_image(seed))
        if split != "test":
            label = cycling_label(seed, num_ids=34)
            write_png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", label)
    return root


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    root = tmp_path / "camvid"
    for seed, (split, name) in enumerate(CAMVID_FILES):
        write_png(root / split / f"{name}.png", random_image(seed))
        write_png(root / f"{split}annot" / f"{name}.png", cycling_label(seed, num_ids=12))
    return root
