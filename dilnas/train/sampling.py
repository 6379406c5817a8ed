"""Data order and augmentation randomness as pure functions of (seed, epoch, index), so that a run resumed
mid-epoch sees exactly the batches an uninterrupted run would have seen."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from dilnas.data.dataset import EpochResampled
from dilnas.utils.seeds import HELDOUT_SPLIT, derive_seed


def dataset_length(dataset: Dataset) -> int:
    """``len(dataset)``. Training needs map-style data sets with a length, but ``torch.utils.data.Dataset``
    declares no ``__len__`` (iterable data sets have none), hence the check."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"object of type '{type(dataset).__name__}' has no len()")
    return len(dataset)


class ResumableDistributedSampler(Sampler[int]):
    """Like ``DistributedSampler`` (shuffled per epoch, padded and sharded across ranks), plus
    ``start_batch``: skip the batches an interrupted run already trained on, without loading them."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        self.size, self.seed, self.rank, self.world_size, self.shuffle = size, seed, rank, world_size, shuffle
        self.epoch = 0
        self.skip = 0
        self.per_rank = -(-size // world_size)  # ceil: pad so every rank gets the same count

    def set_epoch(self, epoch: int, start_batch: int = 0, batch_size: int = 1) -> None:
        self.epoch, self.skip = epoch, start_batch * batch_size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        order += order[: self.per_rank * self.world_size - self.size]
        return iter(order[self.rank :: self.world_size][self.skip :])

    def __len__(self) -> int:
        return self.per_rank - self.skip


class SeededAugmentation(Dataset):
    """Runs sample ``i`` of ``epoch`` with torch's global RNG seeded from (seed, epoch, i), restored after.

    The wrapped dataset's random transforms draw from the global RNG; this makes them reproducible whatever
    worker process or resume point loads the sample. Setting ``epoch`` also rebuilds the samples of a data set
    that changes them every epoch (``EpochResampled``: class-uniform sampling) from (seed, epoch).
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        self.epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch = epoch
        if isinstance(self.dataset, EpochResampled):
            self.dataset.set_epoch(self.seed, epoch)

    def __len__(self) -> int:
        return dataset_length(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, self.epoch, index))
            return self.dataset[index]


class BatchStream:
    """Endless batches from a data set, in the same order as epochs of ``ResumableDistributedSampler``;
    ``seek(n)`` restarts it after ``n`` batches (how a resumed search finds its held-out position)."""

    def __init__(
        self,
        dataset: SeededAugmentation,
        sampler: ResumableDistributedSampler,
        batch_size: int,
        num_workers: int = 0,
    ):
        self.dataset, self.sampler, self.batch_size, self.num_workers = (
            dataset,
            sampler,
            batch_size,
            num_workers,
        )
        self.per_epoch = sampler.per_rank // batch_size
        if self.per_epoch < 1:
            raise ValueError(
                f"batch size {batch_size} exceeds the {sampler.per_rank} samples of a stream epoch"
            )
        self.position = 0
        self._iterator: Iterator | None = None
        self._left = 0

    def seek(self, position: int) -> None:
        self.position, self._iterator = position, None

    def next(self) -> Any:
        if self._iterator is None:
            epoch, start = divmod(self.position, self.per_epoch)
            self.sampler.set_epoch(epoch, start, self.batch_size)
            self.dataset.epoch = epoch
            loader = torch.utils.data.DataLoader(
                self.dataset,
                self.batch_size,
                sampler=self.sampler,
                num_workers=self.num_workers,
                drop_last=True,
            )
            self._iterator, self._left = iter(loader), self.per_epoch - start
        batch = next(self._iterator)
        self.position += 1
        self._left -= 1
        if self._left == 0:
            self._iterator = None
        return batch


def split_indices(size: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A fixed random split of ``range(size)``: (the rest, the ``fraction`` part), both sorted."""
    order = torch.randperm(
        size, generator=torch.Generator().manual_seed(derive_seed(seed, HELDOUT_SPLIT))
    ).tolist()
    cut = size - round(size * fraction)
    return sorted(order[:cut]), sorted(order[cut:])
