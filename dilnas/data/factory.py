"""Data sets from the ``data`` config group: one place that knows every data set's constructor."""

from __future__ import annotations

import torch

from dilnas.data.camvid import CamVidDataset
from dilnas.data.cityscapes import CityscapesDataset
from dilnas.data.dataset import LabelledDataset
from dilnas.data.synthetic import SyntheticConfig, SyntheticDataset
from dilnas.data.transforms import PairTransform, eval_transform, train_transform
from dilnas.spec.options import DataConfig, DataName
from dilnas.utils.errors import UserError


def synthetic_config(config: DataConfig) -> SyntheticConfig:
    return SyntheticConfig(
        image_size=config.image_size,
        num_samples=config.train_samples,
        val_samples=config.val_samples,
        test_samples=config.test_samples,
        context_distance=config.context_distance,
        frames_per_image=config.frames_per_image,
        seed=config.seed,
    )


def build_dataset(config: DataConfig, split: str, train: bool) -> LabelledDataset:
    """The ``split`` of the configured data set, with the training or the evaluation transform."""
    if config.name is DataName.synthetic:
        # Already normalised; frames must stay whole, so the only augmentation is the flip.
        dataset = SyntheticDataset(synthetic_config(config), split)
        if train and config.flip:
            from dilnas.data.transforms import RandomHorizontalFlip

            return _Transformed(dataset, RandomHorizontalFlip(0.5))
        return dataset
    if config.root is None:
        raise UserError(f"data.root is required for data={config.name.value}: pass data.root=DIR")
    if train:
        if config.scale_range is None or config.crop_size is None:
            raise UserError(
                f"data={config.name.value} needs data.scale_range=[MIN,MAX] and data.crop_size=[H,W]"
            )
        transform = train_transform(
            _pair("data.scale_range", config.scale_range),
            _pair("data.crop_size", config.crop_size),
            config.mean,
            config.std,
            0.5 if config.flip else 0.0,
        )
    else:
        transform = eval_transform(config.mean, config.std, config.eval_short_side)
    cls = CityscapesDataset if config.name is DataName.cityscapes else CamVidDataset
    return cls(config.root, split, transform)


def _pair(name: str, value: list[int]) -> tuple[int, int]:
    """``value`` as a (first, second) pair, after checking it holds two positive integers."""
    if len(value) != 2 or min(value) < 1:
        raise UserError(f"{name}={value}: expected two positive integers")
    return value[0], value[1]


class _Transformed(LabelledDataset):
    """A data set with a paired transform applied on top (keeps the data set's class attributes)."""

    def __init__(self, dataset: LabelledDataset, transform: PairTransform):
        self.dataset, self.transform = dataset, transform
        self.num_classes = dataset.num_classes
        self.class_names = dataset.class_names

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*self.dataset[index])
