"""Cityscapes (fine annotations) in its official layout, with the 19 evaluation classes.

Layout under ``root``::

    leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    gtFine/<split>/<city>/<name>_gtFine_labelIds.png

The labelIds PNGs hold the 34 label ids 0..33; they are mapped to the 19 train ids with the official
cityscapesScripts table, every other id to 255 (ignored). The ``test`` split has no public labels: its samples
come with an all-255 label and ``files`` pairs each image with ``None``.
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
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
# cityscapesScripts labels.py: label id -> train id for the 19 evaluated classes, in train-id order.
LABEL_ID_TO_TRAIN_ID = {
    label_id: train_id
    for train_id, label_id in enumerate(
        (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
    )
}
NUM_LABEL_IDS = 34  # ids 0..33; the license plate's id -1 is never drawn into labelIds PNGs


def _layout(root: Path, split: str) -> str:
    return (
        f"leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX} and gtFine/{split}/<city>/*{LABEL_SUFFIX} under {root}"
    )


def _list_split(root: Path, split: str) -> list[tuple[Path, Path | None]]:
    """(image, label) paths of one official split, sorted; the label is None for ``test``."""
    layout = _layout(root, split)
    image_dir = root / "leftImg8bit" / split
    require_dir(image_dir, layout)
    label_dir = root / "gtFine" / split
    has_labels = split != "test"
    if has_labels:
        require_dir(label_dir, layout)

    def label_of(image: Path) -> Path:
        return label_dir / image.parent.name / (image.name[: -len(IMAGE_SUFFIX)] + LABEL_SUFFIX)

    return list_pairs(image_dir, f"*/*{IMAGE_SUFFIX}", layout, label_of if has_labels else None)


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations; splits ``train``, ``val``, ``test`` (no labels) and ``trainval``."""

    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES
    label_table = label_lookup_table(LABEL_ID_TO_TRAIN_ID, ignored_ids=range(NUM_LABEL_IDS))
    label_values_text = f"Cityscapes label ids 0..{NUM_LABEL_IDS - 1}"

    def __init__(self, root: str | os.PathLike, split: str, transform: PairTransform | None = None):
        root = Path(root).expanduser()
        check_split("Cityscapes", split, SPLITS, root)
        parts = ("train", "val") if split == "trainval" else (split,)
        if not root.is_dir():
            raise DataError(f"{root}: Cityscapes root not found; expected {_layout(root, parts[0])}")
        files = [pair for part in parts for pair in _list_split(root, part)]
        super().__init__(root, split, files, transform)
