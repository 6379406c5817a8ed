"""Your own data without code (``data=folder``): a folder of images and label maps with its own classes.

Layout under ``root``::

    classes.yaml              classes: [road, car, ...]   (the names in id order; the class count follows)
                              ignore_index: 255            (optional: the label value no loss or metric counts)
                              palette: [[128, 64, 128], ...] (optional: an RGB colour per class, for pictures)
    images/<split>/<name>.png (or .jpg, .jpeg)
    labels/<split>/<name>.png single-channel label maps of class ids, the same file stems

or, instead of the folders of a split, a list file ``lists/<split>.txt``: one sample per line, ``<image>
<label>`` (or ``<image>`` alone for a split without labels), separated by white space (so paths without
spaces), relative to the root or absolute; blank lines and lines starting with ``#`` are skipped.

Splits are the folders under ``images/`` and the list files under ``lists/`` (``trainval`` joins train and val;
a split defined both ways is refused); a split without ``labels/<split>`` has no labels (prediction only). Labels hold the ids 0..N-1 and ``ignore_index``,
anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dilnas.data.common import DataError, SegmentationDataset, label_lookup_table, list_pairs, require_dir
from dilnas.data.transforms import PairTransform
from dilnas.spec.labels import IGNORE_INDEX, RGB, as_palette, palette_problem
from dilnas.spec.reading import parse_yaml, read_text

CLASSES_FILE = "classes.yaml"
LISTS_DIR, LIST_SUFFIX = "lists", ".txt"  # a split's list file: <root>/lists/<split>.txt
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_classes(root: Path) -> tuple[tuple[str, ...], int, tuple[RGB, ...] | None]:
    """(class names in id order, ignore index, the colours of ``palette:`` or None) from
    ``root/classes.yaml``, each problem a one-line error."""
    path = root / CLASSES_FILE
    data: Any = parse_yaml(read_text(path, "classes"), str(path))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with 'classes:' (the class names in id order)")
    unknown = sorted(set(data) - {"classes", "ignore_index", "palette"})
    if unknown:
        raise DataError(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))}; expected classes, ignore_index, palette"
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
    return tuple(names), ignore, _read_palette(data.get("palette"), len(names), path)


def _read_palette(palette: Any, count: int, path: Path) -> tuple[RGB, ...] | None:
    if palette is None:
        return None
    problem = palette_problem(palette, count)
    if problem is not None:
        where = "palette" if problem.startswith("[") else "palette: "  # palette[3]: ... or palette: 2 entries
        raise DataError(f"{path}: {where}{problem}")
    return as_palette(palette)


class FolderDataset(SegmentationDataset):
    """A folder dataset (module docstring): the classes, the ignore value and the splits come from the folder."""

    dataset_name = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: PairTransform | None = None,
        cache: bool = False,
    ):
        folder = self.root = Path(root).expanduser()
        if not (folder / CLASSES_FILE).is_file():
            raise DataError(f"{folder / CLASSES_FILE}: not found; a folder dataset names its classes there")
        self.class_names, ignore, self.class_colours = read_classes(folder)
        self.num_classes = len(self.class_names)
        self.label_table = label_lookup_table({i: i for i in range(self.num_classes)}, ignored_ids=[ignore])
        self.label_values_text = (
            f"class ids 0..{self.num_classes - 1} or {ignore} (ignored), as {CLASSES_FILE} lists"
        )
        images = folder / "images"
        lists = {path.stem for path in (folder / LISTS_DIR).glob(f"*{LIST_SUFFIX}") if path.is_file()}
        if not lists:
            require_dir(images, self.layout(split))
        folders = {path.name for path in images.iterdir() if path.is_dir()} if images.is_dir() else set()
        both = sorted(folders & lists)
        if both:
            raise DataError(
                f"{folder}: split {both[0]} is both images/{both[0]}/ and {LISTS_DIR}/{both[0]}{LIST_SUFFIX}; "
                "keep one of them"
            )
        found = tuple(sorted(folders | lists))
        self.splits = (*found, "trainval") if {"train", "val"} <= set(found) else found
        super().__init__(folder, split, transform, cache)

    def layout(self, part: str) -> str:
        return f"images/{part}/*.png (or .jpg) and labels/{part}/*.png (same file stems) under {self.root}"

    def list_split(self, part: str) -> list[tuple[Path, Path | None]]:
        listed = self.root / LISTS_DIR / f"{part}{LIST_SUFFIX}"
        if listed.is_file():
            return read_list(listed, self.root)
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


def read_list(path: Path, root: Path) -> list[tuple[Path, Path | None]]:
    """The (image, label) pairs of a list file (module docstring), in its order; every file must exist, and
    either every line names a label or none does."""
    pairs: list[tuple[Path, Path | None]] = []
    first = 0  # the line of the first sample
    for number, line in enumerate(read_text(path, "list").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) > 2:
            raise DataError(f"{where}: {len(fields)} fields; expected '<image> <label>' or '<image>'")
        files = [Path(field) if Path(field).is_absolute() else root / field for field in fields]
        for file in files:
            if not file.is_file():
                raise DataError(f"{where}: {file}: no such file")
        if pairs and (pairs[0][1] is None) != (len(files) == 1):
            raise DataError(f"{where}: every line names a label, or none does (line {first} differs)")
        first = first or number
        pairs.append((files[0], files[1] if len(files) == 2 else None))
    if not pairs:
        raise DataError(f"{path}: no samples; expected lines '<image> <label>'")
    return pairs


def _pairs_or_none(
    image_dir: Path, pattern: str, layout: str, label_dir: Path | None
) -> list[tuple[Path, Path | None]]:
    if not any(image_dir.glob(pattern)):
        return []
    label_of = (lambda image: label_dir / f"{image.stem}.png") if label_dir is not None else None
    return list_pairs(image_dir, pattern, layout, label_of)
