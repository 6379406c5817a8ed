"""What the real data sets share: reading PNGs with Pillow, label lookup tables, errors, one base Dataset.

A data set lists its (image, label) files when it is built, so a missing directory or an image without its
label is reported before training starts; checks that need pixel data (sizes, corrupt files, unknown label
values) happen when a sample is read. Every problem is a ``DataError``: one line naming the file or directory
and what was expected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from dilnas.data.dataset import LabelledDataset
from dilnas.data.transforms import IGNORE_INDEX, Compose, PairTransform, Point
from dilnas.utils.errors import UserError
from dilnas.utils.machine import memory_bytes

log = logging.getLogger("dilnas")
# Pillow label modes holding one integer per pixel ("P" gives palette indices, which is what we want).
_LABEL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B")
# Pillow's exceptions for unreadable, truncated or corrupt files.
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_MAX_LISTED_VALUES = 10


class DataError(UserError):
    """A data-set file or directory that is missing, unreadable, or holds values other than expected."""

    def __init__(self, message: str):
        # Pillow and OS messages may span lines; the entry points print exactly one.
        super().__init__(" ".join(message.split()))


def read_image(path: Path, expected: str = "an RGB PNG") -> np.ndarray:
    """Decode an image file into a (H, W, 3) uint8 array; DataError saying what was ``expected`` if it cannot
    be read."""
    try:
        with _quiet_pillow(), Image.open(path) as handle:
            return np.array(handle.convert("RGB"))
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read image ({exc}); expected {expected}") from exc


def read_image_size(path: Path, expected: str = "an RGB PNG", verify: bool = False) -> tuple[int, int]:
    """The (height, width) of an image file from its header (no pixels are decoded); with ``verify``, the
    whole file is also checked for truncation and corruption (Pillow's ``verify``, still without decoding);
    DataError as ``read_image``."""
    try:
        with _quiet_pillow(), Image.open(path) as handle:
            size = handle.height, handle.width
            if verify:
                handle.verify()
            return size
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read image ({exc}); expected {expected}") from exc


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow's DecompressionBombWarning (a large image) off: dilnas' memory check decides, in one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def read_label(
    path: Path, image_path: Path | None = None, image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode a single-channel label PNG into a (H, W) integer array of raw ids.

    ``image_size`` is the (height, width) of ``image_path``; it is compared before the pixels are decoded.
    """
    try:
        with Image.open(path) as handle:
            if handle.mode not in _LABEL_MODES:
                raise DataError(
                    f"{path}: label image has mode {handle.mode!r}; expected a single-channel PNG of class ids "
                    f"(8-bit grayscale or palette), not a colour rendering"
                )
            width, height = handle.size
            if image_size is not None and (height, width) != tuple(image_size):
                raise DataError(
                    f"{path}: label is {width}x{height} pixels but its image {image_path} is "
                    f"{image_size[1]}x{image_size[0]}; expected the same size"
                )
            return np.array(handle)
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read label ({exc}); expected a single-channel PNG") from exc


def label_lookup_table(to_train_id: Mapping[int, int], ignored_ids: Iterable[int]) -> np.ndarray:
    """A 256-entry int64 table raw id -> train id; ``ignored_ids`` map to 255, every other entry is -1 (bad)."""
    table = np.full(256, -1, dtype=np.int64)
    table[list(ignored_ids)] = IGNORE_INDEX
    for raw_id, train_id in to_train_id.items():
        table[raw_id] = train_id
    return table


def map_label(raw: np.ndarray, table: np.ndarray, path: Path, expected: str) -> np.ndarray:
    """Raw ids -> train ids through ``table``; values the table marks -1 (or beyond it) are a DataError."""
    if raw.dtype == np.uint8:
        mapped = table[raw]
        bad = np.unique(raw[mapped < 0])
    else:  # 16- or 32-bit PNGs: range-check before indexing.
        in_table = (raw >= 0) & (raw < len(table))
        mapped = np.full(raw.shape, -1, dtype=np.int64)
        mapped[in_table] = table[raw[in_table]]
        bad = np.unique(raw[mapped < 0])
    if bad.size:
        listed = ", ".join(str(int(value)) for value in bad[:_MAX_LISTED_VALUES])
        more = f" and {bad.size - _MAX_LISTED_VALUES} more" if bad.size > _MAX_LISTED_VALUES else ""
        raise DataError(f"{path}: unexpected label values {listed}{more}; expected {expected}")
    return mapped


def require_dir(path: Path, layout: str) -> None:
    """Raise a DataError naming ``path`` and the expected ``layout`` unless ``path`` is a directory."""
    if not path.is_dir():
        raise DataError(f"{path}: directory not found; expected {layout}")


def list_pairs(
    image_dir: Path, pattern: str, layout: str, label_of: Callable[[Path], Path] | None
) -> list[tuple[Path, Path | None]]:
    """(image, label) paths of the images matching ``pattern`` under ``image_dir``, sorted; ``label_of``
    names each image's label, which must exist (``None``: a split without labels)."""
    images = sorted(image_dir.glob(pattern))
    if not images:
        raise DataError(f"{image_dir}: no images; expected {layout}")
    files: list[tuple[Path, Path | None]] = []
    for image in images:
        label = label_of(image) if label_of else None
        if label is not None and not label.is_file():
            raise DataError(f"{image}: no label; expected {label}")
        files.append((image, label))
    return files


def check_split(dataset: str, split: str, allowed: Iterable[str], root: Path) -> None:
    """Refuse an unknown split before touching the disk, listing the allowed ones."""
    allowed = tuple(allowed)
    if split not in allowed:
        raise DataError(f"{root}: unknown {dataset} split {split!r}; expected one of {', '.join(allowed)}")


class SegmentationDataset(LabelledDataset):
    """(image, label) pairs from PNG files: image float32 (3, H, W) in [0, 1] before ``transform``, label
    int64 (H, W) in train ids with 255 = ignore (all 255 when there is no label file).

    Subclasses declare what differs (name, splits, class names, label table, ``layout`` and ``list_split``);
    this class checks the split and the root, lists the files of every part of the split (``trainval`` =
    train + val) when built, and reads, checks and maps the pixels when a sample is read.
    """

    ignore_index: int = IGNORE_INDEX
    # raw label id -> train id (-1: not a valid raw id); and how to describe the valid ids in a message.
    label_table: np.ndarray
    label_values_text: str
    # The data set's name in messages, and the splits a user may ask for.
    dataset_name: ClassVar[str]
    splits: tuple[str, ...]  # a class attribute; a folder dataset finds its splits on disk
    # A split that is several parts on disk -> those parts, listed in this order; any other is its own part.
    combined_splits: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {"trainval": ("train", "val")}
    )

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: PairTransform | None = None,
        cache: bool = False,
    ):
        self.root = Path(root).expanduser()
        self.split = split
        self.transform = transform
        # cache: every sample's decoded pixels and train ids (``data.cache``), decoded here, in the process that
        # builds the data set, so that forked loader workers share them. The arrays are never handed out: every
        # read builds new tensors from them, so transforms cannot alter them.
        self._decoded: dict[int, tuple[np.ndarray, np.ndarray | None]] | None = None
        check_split(self.dataset_name, split, self.splits, self.root)
        parts = self.combined_splits.get(split, (split,))
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: {self.dataset_name} root not found; expected {self.layout(parts[0])}"
            )
        self.files = [pair for part in parts for pair in self.list_split(part)]
        if cache:
            self._decode_all()

    @abstractmethod
    def layout(self, part: str) -> str:
        """The expected files of one part under ``root``, as error messages describe them."""

    @abstractmethod
    def list_split(self, part: str) -> list[tuple[Path, Path | None]]:
        """(image, label) paths of one part on disk, sorted (label None: a part without labels); a
        DataError naming ``layout(part)`` when something is missing."""

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load(index)

    def load(self, index: int, point: Point | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index``; with ``point`` (x, y in the label file's pixels) the transform, a ``Compose``, crops
        around it (``Compose.around``: class-uniform sampling)."""
        pixels, train_ids = self.decoded(index)
        height, width = pixels.shape[:2]
        if train_ids is None:
            label = torch.full((height, width), IGNORE_INDEX, dtype=torch.int64)
        else:
            label = torch.from_numpy(train_ids).to(torch.int64)  # a new tensor: the cached ids stay as read
        image = (
            torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).to(torch.float32).div_(255.0)
        )
        if point is not None:
            if not isinstance(self.transform, Compose):
                raise TypeError(f"{type(self).__name__}.load: a point needs a Compose transform")
            return self.transform.around(image, label, point)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label

    def decoded(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Sample ``index``'s pixels (H, W, 3 uint8) and train ids (H, W, uint8; None without a label file),
        read and checked, or from memory when the data set caches."""
        if self._decoded is not None:
            return self._decoded[index]
        image_path, label_path = self.files[index]
        pixels = read_image(image_path)
        train_ids = None
        if label_path is not None:
            # Train ids are 0..254 or 255 (ignored): uint8 holds them exactly, in an eighth of int64's memory.
            train_ids = self.read_train_ids(index, pixels.shape[:2]).astype(np.uint8)
        return pixels, train_ids

    def _decode_all(self) -> None:
        """``data.cache``: decode every sample into memory, after checking from the files' headers that the
        pixels (4 bytes each: RGB and the label) fit in half of the machine's memory."""
        needed = sum(
            4 * height * width for height, width in (read_image_size(image) for image, _ in self.files)
        )
        have = memory_bytes()
        if needed > have // 2:
            raise DataError(
                f"{self.root}: data.cache=true would keep the {len(self.files)} images of split {self.split!r} "
                f"decoded in {needed / 2**30:.1f} GiB, more than half of this machine's {have / 2**30:.1f} GiB; "
                "leave data.cache=false for this data set"
            )
        log.info(
            "data.cache: decoding the %d images of %s %s into memory (%.0f MB)",
            len(self.files),
            self.dataset_name,
            self.split,
            needed / 1e6,
        )
        self._decoded = {index: self.decoded(index) for index in range(len(self.files))}

    def read_train_ids(self, index: int, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """Sample ``index``'s label file as a (H, W) int64 array of train ids (255 = ignore), checked.

        ``image_size``: the (height, width) its image must have, when known."""
        image_path, label_path = self.files[index]
        if label_path is None:
            raise DataError(f"{image_path}: no label file (split {self.split!r} has no labels)")
        raw = read_label(label_path, image_path if image_size else None, image_size)
        return map_label(raw, self.label_table, label_path, self.label_values_text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} images)"
