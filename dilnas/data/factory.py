"""Data sets from the ``data`` config group: one place that knows every data set's constructor."""

from __future__ import annotations

import logging
import math

import torch

from dilnas.data.camvid import CamVidDataset
from dilnas.data.cityscapes import CityscapesDataset
from dilnas.data.class_uniform import ClassUniformDataset, class_centroids
from dilnas.data.common import SegmentationDataset
from dilnas.data.dataset import LabelledDataset
from dilnas.data.folder import FolderDataset
from dilnas.data.randaugment import RandAugment
from dilnas.data.synthetic import SyntheticConfig, SyntheticDataset, channel_statistics
from dilnas.data.transforms import PairTransform, eval_transform, train_transform
from dilnas.spec.options import Augment, CropPadding, DataConfig, DataName
from dilnas.utils.errors import UserError

log = logging.getLogger("dilnas")


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


def check_data_config(config: DataConfig) -> None:
    """Refuse values the schema's types let through, in one line naming the key and what is allowed."""
    pct = config.class_uniform_pct
    if not (math.isfinite(pct) and 0.0 <= pct <= 1.0):
        raise UserError(
            f"data.class_uniform_pct={pct}: expected a number in [0, 1] (the share of each epoch's samples "
            f"cropped around a class centroid; 0 turns it off)"
        )
    if config.name is DataName.synthetic and pct > 0:
        raise UserError(
            f"data.class_uniform_pct={pct}: class-uniform sampling needs label files; data=synthetic has "
            f"none (expected 0, or data=cityscapes / data=camvid)"
        )
    if config.name is DataName.synthetic and config.augment is not Augment.none:
        raise UserError(
            f"data.augment={config.augment.value}: data=synthetic keeps its frames whole (expected none)"
        )


def build_dataset(config: DataConfig, split: str, train: bool, resampled: bool = False) -> LabelledDataset:
    """The ``split`` of the configured data set, with the training or the evaluation transform.

    ``resampled``: the caller sets every epoch (``dilnas.train.sampling.SeededAugmentation`` does), so a
    training set may rebuild its samples each epoch (``data.class_uniform_pct``). The search cannot: it splits
    a fixed list of images into a training and a held-out part."""
    check_data_config(config)
    if config.name is DataName.synthetic:
        # Already normalised; frames must stay whole, so the only augmentation is the flip.
        synthetic = SyntheticDataset(synthetic_config(config), split)
        if train and config.flip:
            from dilnas.data.transforms import RandomHorizontalFlip

            return _Transformed(synthetic, RandomHorizontalFlip(0.5))
        return synthetic
    if config.root is None:
        raise UserError(f"data.root is required for data={config.name.value}: pass data.root=DIR")
    if train:
        if config.scale_range is None or config.crop_size is None:
            raise UserError(
                f"data={config.name.value} needs data.scale_range=[MIN,MAX] and data.crop_size=[H,W]"
            )
        augment = RandAugment(fill=config.mean) if config.augment is Augment.randaug_reduced else None
        transform = train_transform(
            _pair("data.scale_range", config.scale_range),
            _pair("data.crop_size", config.crop_size),
            config.mean,
            config.std,
            0.5 if config.flip else 0.0,
            augment=augment,
            official_padding=config.crop_padding is CropPadding.official,
        )
    else:
        transform = eval_transform(config.mean, config.std, config.eval_short_side)
    classes: dict[DataName, type[SegmentationDataset]] = {
        DataName.cityscapes: CityscapesDataset,
        DataName.camvid: CamVidDataset,
        DataName.folder: FolderDataset,
    }
    dataset = classes[config.name](config.root, split, transform, cache=config.cache)
    if train and config.class_uniform_pct > 0:
        if not resampled:
            raise UserError(
                f"data.class_uniform_pct={config.class_uniform_pct}: class-uniform sampling is for "
                f"dilnas-retrain only (a search splits a fixed list of images); expected 0 here"
            )
        return class_uniform(dataset, config.class_uniform_pct)
    return dataset


def normalisation(config: DataConfig) -> dict[str, list[float]]:
    """The mean and std the data set is really normalised with: the synthetic data's own channel statistics,
    ``data.mean``/``data.std`` for the real ones. Recorded with every run and checkpoint."""
    if config.name is DataName.synthetic:
        mean, std = channel_statistics(synthetic_config(config))
        return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return {"mean": list(config.mean), "std": list(config.std)}


def train_input_size(config: DataConfig) -> tuple[int, int] | None:
    """The (height, width) of a training sample: the synthetic image, or the crop of a real data set."""
    if config.name is DataName.synthetic:
        return config.image_size, config.image_size
    return (config.crop_size[0], config.crop_size[1]) if config.crop_size else None


def class_uniform(dataset: SegmentationDataset, pct: float) -> ClassUniformDataset:
    """``dataset`` with class-uniform sampling; computes (or reads the cached) class centroids."""
    centroids = class_centroids(dataset)
    uniform = ClassUniformDataset(dataset, centroids, pct)
    counts = [len(rows) for rows in centroids.by_class]
    source = "computed" if centroids.computed else "read"
    log.info(
        "class-uniform sampling: %d of %d samples per epoch around class centroids (%d per class); "
        "%d centroids %s (%s)",
        uniform.per_class * sum(count > 0 for count in counts),
        len(uniform),
        uniform.per_class,
        sum(counts),
        source,
        centroids.path or "not cached",
    )
    missing = [name for name, count in zip(dataset.class_names, counts, strict=True) if count == 0]
    if missing:
        log.warning("class-uniform sampling: no centroid of %s; their share goes to random images", missing)
    if uniform.per_class == 0:
        log.warning(
            "class-uniform sampling: %d samples x %s / %d classes rounds down to 0 per class: off",
            len(uniform),
            uniform.pct,
            uniform.num_classes,
        )
    return uniform


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
        self.class_colours = dataset.class_colours

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*self.dataset[index])
