"""CamVid in the widely used 11-class SegNet layout (367 train, 101 val, 233 test images at 360x480).

Layout under ``root``: ``<split>/<name>.png`` with its label ``<split>annot/<name>.png`` (same file name) for
the splits train, val and test. Labels hold the class ids 0..10 and 11 for void, which becomes 255 (ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

from dilnas.data.common import (
    DataError,
    SegmentationDataset,
    check_split,
    label_lookup_table,
    list_pairs,
    require_dir,
)
from dilnas.data.transforms import PairTransform

SPLITS = ("train", "val", "test", "trainval")
CLASS_NAMES = (
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
VOID_ID = 11


def _layout(root: Path, split: str) -> str:
    return f"{split}/*.png and {split}annot/*.png (same file names) under {root}"


def _list_split(root: Path, split: str) -> list[tuple[Path, Path | None]]:
    """(image, label) paths of one split, sorted by file name."""
    layout = _layout(root, split)
    image_dir, label_dir = root / split, root / f"{split}annot"
    require_dir(image_dir, layout)
    require_dir(label_dir, layout)
    return list_pairs(image_dir, "*.png", layout, lambda image: label_dir / image.name)


class CamVidDataset(SegmentationDataset):
    """CamVid, 11 classes; splits ``train``, ``val``, ``test`` and ``trainval`` (train + val, as in RegSeg)."""

    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    label_table = label_lookup_table(
        {class_id: class_id for class_id in range(VOID_ID)}, ignored_ids=[VOID_ID]
    )
    label_values_text = f"CamVid class ids 0..{VOID_ID - 1} or {VOID_ID} (void)"

    def __init__(self, root: str | os.PathLike, split: str, transform: PairTransform | None = None):
        root = Path(root).expanduser()
        check_split("CamVid", split, SPLITS, root)
        parts = ("train", "val") if split == "trainval" else (split,)
        if not root.is_dir():
            raise DataError(f"{root}: CamVid root not found; expected {_layout(root, parts[0])}")
        files = [pair for part in parts for pair in _list_split(root, part)]
        super().__init__(root, split, files, transform)
