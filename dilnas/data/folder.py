"""Your own data without code (``data=folder``): a folder of images and label maps with its own classes.

Layout under ``root``::

    classes.yaml              classes: [road, car, ...]   (the names in id order; the class count follows)
                              ignore_index: 255            (optional: the label value no loss or metric counts)
    images/<split>/<name>.png (or .jpg, .jpeg)
    labels/<split>/<name>.png single-channel label maps of class ids, the same file stems

Splits are the folders under ``images/`` (``trainval`` joins train and val); a split without ``labels/<split>``
has no labels (prediction only). Labels hold the ids 0..N-1 and ``ignore_index``, anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dilnas.data.common import DataError, SegmentationDataset, label_lookup_table, list_pairs, require_dir
from dilnas.data.transforms import PairTransform
from dilnas.spec.labels import IGNORE_INDEX
from dilnas.spec.reading import parse_yaml, read_text

CLASSES_FILE = "classes.yaml"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_classes(root: Path) -> tuple[tuple[str, ...], int]:
    """(class names in id order, ignore index) from ``root/classes.yaml``, each problem a one-line error."""
    path = root / CLASSES_FILE
    data: Any = parse_yaml(read_text(path, "classes"), str(path))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with 'classes:' (the class names in id order)")
    unknown = sorted(set(data) - {"classes", "ignore_index"})
    if unknown:
        raise DataError(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))}; expected classes, ignore_index"
        )
    names = data.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise DataError(f"{path}: classes: expected a list of class names in id order, e.g. [road, car]")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: classes: a name is listed twice")
    if len(names) > 255:
        raise DataError(f"{path}: classes: {len(names)} names; at most 255 classes (ids 0..254)")
    ignore = data.get("ignore_index", IGNORE_INDEX)
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not len(names) <= ignore <= 255:
        raise DataError(
            f"{path}: ignore_index: {ignore!r}; expected a label value from {len(names)} to 255 (no class id)"
        )
    return tuple(names), ignore


class FolderDataset(SegmentationDataset):
    """A folder dataset (module docstring): the classes, the ignore value and the splits come from the folder."""

    dataset_name = "folder"

    def __init__(self, root: str | os.PathLike, split: str, transform: PairTransform | None = None):
        folder = self.root = Path(root).expanduser()
        if not (folder / CLASSES_FILE).is_file():
            raise DataError(f"{folder / CLASSES_FILE}: not found; a folder dataset names its classes there")
        self.class_names, ignore = read_classes(folder)
        self.num_classes = len(self.class_names)
        self.label_table = label_lookup_table({i: i for i in range(self.num_classes)}, ignored_ids=[ignore])
        self.label_values_text = (
            f"class ids 0..{self.num_classes - 1} or {ignore} (ignored), as {CLASSES_FILE} lists"
        )
        images = folder / "images"
        require_dir(images, self.layout(split))
        found = tuple(sorted(path.name for path in images.iterdir() if path.is_dir()))
        self.splits = (*found, "trainval") if {"train", "val"} <= set(found) else found
        super().__init__(folder, split, transform)

    def layout(self, part: str) -> str:
        return f"images/{part}/*.png (or .jpg) and labels/{part}/*.png (same file stems) under {self.root}"

    def list_split(self, part: str) -> list[tuple[Path, Path | None]]:
        image_dir, label_dir = self.root / "images" / part, self.root / "labels" / part
        require_dir(image_dir, self.layout(part))
        labels = label_dir.is_dir()
        pairs = [
            pair
            for suffix in IMAGE_SUFFIXES
            for pair in _pairs_or_none(
                image_dir, f"*{suffix}", self.layout(part), label_dir if labels else None
            )
        ]
        if not pairs:
            raise DataError(f"{image_dir}: no images; expected {self.layout(part)}")
        stems = [image.stem for image, _ in pairs]
        if len(set(stems)) != len(stems):
            twice = sorted({stem for stem in stems if stems.count(stem) > 1})
            raise DataError(
                f"{image_dir}: {', '.join(twice)}: two images with one stem; one label each is needed"
            )
        return sorted(pairs)


def _pairs_or_none(
    image_dir: Path, pattern: str, layout: str, label_dir: Path | None
) -> list[tuple[Path, Path | None]]:
    if not any(image_dir.glob(pattern)):
        return []
    label_of = (lambda image: label_dir / f"{image.stem}.png") if label_dir is not None else None
    return list_pairs(image_dir, pattern, layout, label_of)
