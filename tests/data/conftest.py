"""Fixtures writing tiny fake Cityscapes and CamVid trees (32x64 PNGs) into tmp_path (builders: tests.helpers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.fake_data import (
    CITYSCAPES_FILES,
    cycling_label,
    random_image,
    write_blob_tree,
    write_camvid_tree,
    write_png,
)


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
    return write_camvid_tree(tmp_path / "camvid")


@pytest.fixture
def cityscapes_blobs_root(tmp_path: Path) -> Path:
    """``write_blob_tree``: blobs on unlabeled ground, so that a crop may miss every class."""
    return write_blob_tree(tmp_path / "cityscapes_blobs")
