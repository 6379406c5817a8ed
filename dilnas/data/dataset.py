"""``LabelledDataset``: what every dilnas data set is, and what the commands may read of one."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch.utils.data import Dataset


class LabelledDataset(Dataset[tuple[torch.Tensor, torch.Tensor]], ABC):
    """A map-style data set of (image, label) pairs with a length and named classes (synthetic, Cityscapes,
    CamVid, and what ``build_dataset`` wraps them in).

    A base class rather than a ``typing.Protocol``: ``DataLoader`` and ``Subset`` take only subclasses of
    ``torch.utils.data.Dataset``, which declares neither ``__len__`` nor the class attributes.
    """

    num_classes: int
    class_names: tuple[str, ...]
    # An RGB colour per class where the data declares them (a folder dataset's palette:), else None.
    class_colours: tuple[tuple[int, int, int], ...] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class EpochResampled(LabelledDataset):
    """A data set whose list of samples changes every epoch (class-uniform sampling).

    ``set_epoch(seed, epoch)`` rebuilds the list as a pure function of its arguments, so every DDP rank and
    every resumed run builds the same one; its length never changes. ``SeededAugmentation`` calls it whenever
    its epoch is set.
    """

    @abstractmethod
    def set_epoch(self, seed: int, epoch: int) -> None: ...
