"""Class-uniform sampling (Zhu et al. 2019, "Improving Semantic Segmentation via Video Propagation and Label
Relaxation"), as in RegSeg's official Cityscapes recipe (``data.class_uniform_pct``).

Once per training split: every label map (train ids, 255 ignored) is cut into tiles of ``TILE_SIZE`` (1024)
pixels, and every class present in a tile gives one centroid, the mean position of its pixels there (rounded
down). Tiles at the right and bottom edges that are narrower than a tile count too (the official code drops
them; Cityscapes' 1024x2048 maps have none; a map smaller than a tile, like CamVid's, is one tile). The
centroids are cached (``class_centroids``) and recomputed when the split's label files change.

Every epoch (``epoch_samples``): of the epoch's N samples, ``int(N * pct / num_classes)`` per class are
(image, centroid) pairs drawn at random from that class's centroids, the rest are random images; the random
crop of a centroid sample contains its centroid (``dilnas.data.transforms.Compose.around``). A class without
any centroid gives its share to random images, so that every epoch has N samples (the official code makes that
epoch shorter). The list is a pure function of (seed, epoch): every DDP rank builds the same one and takes its
shard, and a resumed run rebuilds it exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dilnas.data.common import DataError, SegmentationDataset
from dilnas.data.dataset import EpochResampled
from dilnas.data.transforms import Compose
from dilnas.utils.files import UnwritableError, atomic_write_text, user_cache_dir
from dilnas.utils.seeds import CLASS_UNIFORM, derive_seed

log = logging.getLogger("dilnas")

TILE_SIZE = 1024
CACHE_FORMAT = "dilnas.class_centroids"
CACHE_VERSION = 1  # bump when the centroids would come out differently: old caches are then recomputed
CACHE_DIR = ".dilnas-cache"  # beside the data: <data root>/.dilnas-cache/
RANDOM = -1  # the class (and x, y) of an epoch entry that is a random image, not a centroid


@dataclass
class ClassCentroids:
    """Per class, an int64 array (M, 3) of (image index, x, y): the centroids of that class, with where they
    are cached (``None``: nowhere writable) and whether they were ``computed`` now or read from the cache."""

    by_class: list[np.ndarray]
    path: Path | None = None
    computed: bool = True


def tile_centroids(
    label: np.ndarray, num_classes: int, tile_size: int = TILE_SIZE
) -> list[tuple[int, int, int]]:
    """(class, x, y) of every class present in every ``tile_size`` tile of ``label`` (train ids; values of
    ``num_classes`` and above, such as 255, are ignored): its pixels' mean position in the tile, rounded down."""
    height, width = label.shape
    bins = num_classes + 1  # the classes, then one bin for every ignored pixel
    found: list[tuple[int, int, int]] = []
    for top in range(0, height, tile_size):
        for left in range(0, width, tile_size):
            patch = np.minimum(label[top : top + tile_size, left : left + tile_size], num_classes)
            rows, cols = patch.shape
            # Pixels per (row, class) and per (column, class): two integer histograms give the counts and the
            # coordinate sums of every class at once.
            row_keys = (patch + np.arange(rows)[:, None] * bins).ravel()
            col_keys = (patch + np.arange(cols)[None, :] * bins).ravel()
            per_row = np.bincount(row_keys, minlength=rows * bins).reshape(rows, bins)
            per_col = np.bincount(col_keys, minlength=cols * bins).reshape(cols, bins)
            counts = per_row.sum(0)[:num_classes]
            sum_y, sum_x = np.arange(rows) @ per_row, np.arange(cols) @ per_col
            for class_id in np.flatnonzero(counts).tolist():
                count = int(counts[class_id])
                found.append(
                    (class_id, left + int(sum_x[class_id]) // count, top + int(sum_y[class_id]) // count)
                )
    return found


def compute_centroids(dataset: SegmentationDataset, tile_size: int = TILE_SIZE) -> list[np.ndarray]:
    """The centroids of every label map of ``dataset`` (``ClassCentroids.by_class``), logging progress."""
    total = len(dataset)
    rows: list[list[tuple[int, int, int]]] = [[] for _ in range(dataset.num_classes)]
    started = last_report = time.monotonic()
    log.info("class centroids: reading the %d label maps of %s (once; cached)", total, dataset)
    for index in range(total):
        for class_id, x, y in tile_centroids(dataset.read_train_ids(index), dataset.num_classes, tile_size):
            rows[class_id].append((index, x, y))
        now = time.monotonic()
        if now - last_report >= 10.0 or index + 1 == total:
            last_report = now
            elapsed = now - started
            left = elapsed / (index + 1) * (total - index - 1)
            log.info(
                "class centroids: %d/%d label maps (%d%%), %.0f s, about %.0f s left",
                index + 1,
                total,
                100 * (index + 1) // total,
                elapsed,
                left,
            )
    return [np.asarray(class_rows, dtype=np.int64).reshape(-1, 3) for class_rows in rows]


def cache_key(dataset: SegmentationDataset, tile_size: int = TILE_SIZE) -> str:
    """A hash of what the centroids depend on: the split, its label files in order (path under the root,
    size, modification time), the label mapping, the tile size and the cache version."""
    labels = []
    for image_path, label_path in dataset.files:
        if label_path is None:
            raise DataError(
                f"{image_path}: class-uniform sampling needs labels; split {dataset.split!r} has none"
            )
        stat = label_path.stat()
        labels.append([_relative(label_path, dataset.root), stat.st_size, stat.st_mtime_ns])
    payload = {
        "version": CACHE_VERSION,
        "dataset": type(dataset).__name__,
        "split": dataset.split,
        "num_classes": dataset.num_classes,
        "tile_size": tile_size,
        "label_table": dataset.label_table.tolist(),
        "labels": labels,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def cache_paths(root: Path, split: str, tile_size: int = TILE_SIZE) -> list[Path]:
    """Where the centroids of a split are cached, in the order they are tried: beside the data
    (``<root>/.dilnas-cache/``), then the user's cache directory (``$XDG_CACHE_HOME/dilnas/class_centroids/``,
    the file named after a hash of the root's absolute path)."""
    name = f"class_centroids_{split}_tile{tile_size}.json"
    root_hash = hashlib.sha256(str(root.resolve()).encode("utf-8")).hexdigest()[:16]
    return [root / CACHE_DIR / name, user_cache_dir() / "class_centroids" / f"{root_hash}_{name}"]


def class_centroids(dataset: SegmentationDataset, tile_size: int = TILE_SIZE) -> ClassCentroids:
    """The centroids of ``dataset``'s label maps: from the cache when its key matches the files, else computed
    and cached (written atomically beside the data, or in the user's cache directory when that fails).

    Under DDP every rank that finds no cache computes the centroids itself (the same ones; no collective
    call that could time out during a long pass) and writes the same file."""
    key = cache_key(dataset, tile_size)
    paths = cache_paths(dataset.root, dataset.split, tile_size)
    for path in paths:
        cached = _read_cache(path, key, dataset.num_classes, len(dataset))
        if cached is not None:
            return ClassCentroids(cached, path, computed=False)
    by_class = compute_centroids(dataset, tile_size)
    payload = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "key": key,
        "split": dataset.split,
        "tile_size": tile_size,
        "num_classes": dataset.num_classes,
        "num_labels": len(dataset),
        "centroids": [rows.tolist() for rows in by_class],  # per class: [image index, x, y] rows
    }
    # Compact: tens of thousands of rows; indented JSON would put every number on its own line.
    text = json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n"
    for path in paths:
        try:
            atomic_write_text(path, text)
        except UnwritableError as error:
            log.info("class centroids: cannot write %s (%s)", path, error)
            continue
        log.info("class centroids: cached in %s", path)
        return ClassCentroids(by_class, path, computed=True)
    log.warning("class centroids: not cached, none of %s is writable", ", ".join(map(str, paths)))
    return ClassCentroids(by_class, None, computed=True)


def _read_cache(path: Path, key: str, num_classes: int, num_images: int) -> list[np.ndarray] | None:
    """The cached centroids, or None (then recomputed and rewritten) when the file is missing, unreadable, of
    another key, or its contents do not fit the split: checked, not trusted."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("class centroids: ignoring the unreadable cache %s (%s)", path, error)
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("key") != key:
        return None  # another tree, changed labels or another version: recomputed and overwritten
    centroids = data.get("centroids")
    if not isinstance(centroids, list) or len(centroids) != num_classes:
        return None
    try:
        tables = [np.asarray(rows, dtype=np.int64) for rows in centroids]
    except (TypeError, ValueError, OverflowError):
        tables = []
    fits = len(tables) == num_classes and all(
        table.size == 0
        or (table.ndim == 2 and table.shape[1] == 3 and table.min() >= 0 and table[:, 0].max() < num_images)
        for table in tables
    )
    if not fits:
        log.warning(
            "class centroids: ignoring the cache %s, whose contents do not fit the split: recomputed", path
        )
        return None
    return [table.reshape(-1, 3) for table in tables]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.path.abspath(path)


def _cycled_draw(size: int, count: int, generator: torch.Generator) -> np.ndarray:
    """``count`` indices of ``range(size)``: a random permutation, repeated as often as needed (so no index
    comes twice before every other has come once)."""
    order = torch.randperm(size, generator=generator).numpy()
    return order[np.arange(count) % size]


def epoch_samples(
    num_samples: int, centroids: list[np.ndarray], pct: float, seed: int, epoch: int
) -> np.ndarray:
    """The (``num_samples``, 4) int64 list of an epoch: rows (image index, class, x, y), the class, x and y of
    a random image being ``RANDOM`` (-1). Centroid rows come after the random images, by class; the data
    order is the sampler's job."""
    num_classes = len(centroids)
    generator = torch.Generator().manual_seed(derive_seed(seed, CLASS_UNIFORM, epoch))
    per_class = int(num_samples * pct / num_classes)
    parts = []
    for class_id, rows in enumerate(centroids):
        if per_class == 0 or len(rows) == 0:
            continue  # a class without centroids gives its share to random images
        picked = rows[_cycled_draw(len(rows), per_class, generator)]
        parts.append(np.column_stack([picked[:, 0], np.full(per_class, class_id), picked[:, 1:]]))
    num_random = num_samples - sum(len(part) for part in parts)
    images = _cycled_draw(num_samples, num_random, generator)
    parts.insert(0, np.column_stack([images, np.full((num_random, 3), RANDOM)]))
    return np.concatenate(parts).astype(np.int64)


class ClassUniformDataset(EpochResampled):
    """A training data set whose samples are rebuilt every epoch by class-uniform sampling.

    Sample ``i`` is entry ``i`` of the epoch's list (``samples``): a random image, or an image cropped around
    one of its class centroids. Its length is the wrapped data set's."""

    def __init__(self, dataset: SegmentationDataset, centroids: ClassCentroids, pct: float):
        if not isinstance(dataset.transform, Compose):
            raise TypeError("ClassUniformDataset: the data set's transform must be a Compose (it crops)")
        if not 0.0 < pct <= 1.0:
            raise ValueError(f"ClassUniformDataset: pct must be in (0, 1], got {pct!r}")
        self.dataset, self.centroids, self.pct = dataset, centroids, pct
        self.num_classes, self.class_names = dataset.num_classes, dataset.class_names
        self.class_colours = dataset.class_colours
        self.set_epoch(0, 0)

    @property
    def per_class(self) -> int:
        """Centroid samples per class and epoch (classes that have centroids)."""
        return int(len(self.dataset) * self.pct / self.num_classes)

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.samples = epoch_samples(len(self.dataset), self.centroids.by_class, self.pct, seed, epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_index, class_id, x, y = self.samples[index].tolist()
        return self.dataset.load(image_index, None if class_id == RANDOM else (x, y))

    def __repr__(self) -> str:
        return f"ClassUniformDataset({self.dataset!r}, pct={self.pct})"
