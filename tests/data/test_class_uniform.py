"""Class-uniform sampling: centroids per tile, the cache, each epoch's list (shares, determinism, resume, DDP
shards) and crops that contain their centroid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dilnas.data.cityscapes import CityscapesDataset
from dilnas.data.class_uniform import (
    RANDOM,
    ClassUniformDataset,
    cache_paths,
    class_centroids,
    epoch_samples,
    tile_centroids,
)
from dilnas.data.factory import build_dataset
from dilnas.data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomShortSideScale
from dilnas.spec.options import DataConfig, DataName
from dilnas.train.sampling import ResumableDistributedSampler, SeededAugmentation
from dilnas.utils.errors import UserError
from tests.helpers.fake_data import BLOB_TRAIN_IMAGES, blob_classes, blob_label, write_png

CROP = 16  # of images scaled to a short side of 24..40 (24x48 at first): a crop often misses a blob
NUM_CLASSES = 19


def blob_config(root: Path, pct: float = 0.5) -> DataConfig:
    return DataConfig(
        name=DataName.cityscapes,
        root=str(root),
        scale_range=[24, 40],  # only up: nearest-exact scaling keeps every 5x6 blob
        crop_size=[CROP, CROP],
        class_uniform_pct=pct,
        num_workers=0,
    )


def uniform_set(root: Path, pct: float = 0.5) -> ClassUniformDataset:
    dataset = build_dataset(blob_config(root, pct), "train", train=True, resampled=True)
    assert isinstance(dataset, ClassUniformDataset)
    return dataset


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the user cache directory (the fallback) inside the test's directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    return tmp_path / "user_cache"


def test_class_uniform_tile_centroids() -> None:
    label = np.full((6, 10), 255, dtype=np.int64)
    label[0:2, 0:2] = 3  # tile (0, 0): mean row 0.5, column 0.5 -> (0, 0)
    label[1, 3] = 3  # same tile: class 3 at (0,0),(0,1),(1,0),(1,1),(1,3) -> mean x 1.4, y 0.8 -> (1, 0)
    label[5, 9] = 3  # the partial tile at rows 4..5, columns 8..9
    label[2:4, 4:8] = 1  # tile (0, 4): rows 2..3, columns 4..7 -> (5, 2)
    found = sorted(tile_centroids(label, num_classes=19, tile_size=4))
    assert found == [(1, 5, 2), (3, 1, 0), (3, 9, 5)]
    assert tile_centroids(np.full((3, 3), 255), num_classes=19, tile_size=4) == []  # nothing but ignore
    # one tile when the map is smaller than a tile (CamVid's 360x480 under the 1024 tiles)
    assert sorted(tile_centroids(label, num_classes=19)) == [(1, 5, 2), (3, 2, 1)]


def test_class_uniform_share_per_class_over_epochs() -> None:
    generator = np.random.default_rng(0)
    centroids = [generator.integers(0, 50, (5 + 3 * c, 3)) for c in range(NUM_CLASSES - 1)]
    centroids.append(np.zeros((0, 3), dtype=np.int64))  # a class seen nowhere
    num_samples, pct, epochs = 380, 0.5, 200
    per_class = int(num_samples * pct / NUM_CLASSES)
    assert per_class == 10
    used = [np.zeros(len(rows), dtype=np.int64) for rows in centroids]
    images = np.zeros(num_samples, dtype=np.int64)
    for epoch in range(epochs):
        samples = epoch_samples(num_samples, centroids, pct, seed=1, epoch=epoch)
        assert samples.shape == (num_samples, 4)
        counts = np.bincount(samples[:, 1][samples[:, 1] >= 0], minlength=NUM_CLASSES)
        assert counts[:-1].tolist() == [per_class] * (NUM_CLASSES - 1) and counts[-1] == 0
        assert abs(counts[0] / num_samples - pct / NUM_CLASSES) < 1 / num_samples
        for class_id, rows in enumerate(centroids[:-1]):
            picked = samples[samples[:, 1] == class_id]
            # each pick is one of the class's centroids, with its image
            index = {tuple(row): i for i, row in enumerate(rows.tolist())}
            for image, _, x, y in picked.tolist():
                used[class_id][index[(image, x, y)]] += 1
        random_rows = samples[samples[:, 1] == RANDOM]
        assert len(random_rows) == num_samples - 18 * per_class  # the empty class's share is random images
        assert (random_rows[:, 2:] == RANDOM).all()
        images += np.bincount(random_rows[:, 0], minlength=num_samples)
    # drawn uniformly: over the epochs every centroid of a class is used about equally often
    for class_id, counts in enumerate(used[:-1]):
        expected = epochs * per_class / len(centroids[class_id])
        assert 0.5 * expected <= counts.min() and counts.max() <= 1.5 * expected, class_id
    assert images.min() > 0  # the random part covers every image over the epochs


def test_class_uniform_share_and_crops_on_a_fake_tree(cityscapes_blobs_root: Path) -> None:
    """Over many epochs every class gets int(N * pct / 19) centroid samples per epoch, and every centroid
    sample's crop shows its class (the blob around the centroid), which a random crop often misses."""
    dataset = uniform_set(cityscapes_blobs_root)
    num_samples = len(dataset)
    assert num_samples == BLOB_TRAIN_IMAGES and dataset.per_class == 1
    shares = np.zeros(NUM_CLASSES)
    centroid_samples = random_hits = random_samples = 0
    epochs = 12
    for epoch in range(epochs):
        dataset.set_epoch(seed=0, epoch=epoch)
        for index, (image, class_id, x, y) in enumerate(dataset.samples.tolist()):
            _, label = dataset[index]
            assert label.shape == (CROP, CROP)
            if class_id == RANDOM:
                random_samples += 1
                random_hits += int(blob_classes(image)[0] in label)
                continue
            centroid_samples += 1
            shares[class_id] += 1
            raw = blob_label(image)
            assert raw[y, x] != 0  # the centroid of a blob lies in the blob
            assert class_id in blob_classes(image) and class_id in label, (epoch, index)
    shares /= epochs * num_samples
    assert np.allclose(shares, 0.5 / NUM_CLASSES, atol=1 / num_samples)
    assert centroid_samples == epochs * NUM_CLASSES
    assert random_hits < 0.6 * random_samples  # about 0.3: so "the crop shows the class" is not a given


def test_class_uniform_crop_contains_the_point() -> None:
    generator = torch.Generator().manual_seed(0)
    for trial in range(200):
        height, width = torch.randint(5, 40, (2,), generator=generator).tolist()
        crop_h, crop_w = torch.randint(1, 30, (2,), generator=generator).tolist()
        label = torch.arange(height * width).view(height, width)
        image = label[None].float()
        point = (trial * 7 % width, trial * 5 % height)
        out_image, out_label, (x, y) = RandomCrop(crop_h, crop_w, generator=generator).with_point(
            image, label, point
        )
        assert out_label.shape == (crop_h, crop_w) and 0 <= x < crop_w and 0 <= y < crop_h
        assert (
            out_label[y, x] == label[point[1], point[0]] and out_image[0, y, x] == label[point[1], point[0]]
        )
    # through scale and flip too: the label at the followed point is the original pixel's (upscaling)
    steps = [RandomShortSideScale(20, 40), RandomCrop(8, 8), RandomHorizontalFlip(0.5)]
    label = torch.arange(20 * 30).view(20, 30)
    for trial in range(50):
        image, moved, point = label[None].float(), label, (trial % 30, trial % 20)
        for step in steps:
            image, moved, point = step.with_point(image, moved, point)
        assert moved[point[1], point[0]] == label[trial % 20, trial % 30]


def test_class_uniform_cache_is_reused_and_recomputed(cityscapes_blobs_root: Path, user_cache: Path) -> None:
    dataset = CityscapesDataset(cityscapes_blobs_root, "train", Compose([]))
    first = class_centroids(dataset)
    beside = cityscapes_blobs_root / ".dilnas-cache" / "class_centroids_train_tile1024.json"
    assert first.computed and first.path == beside and beside.is_file()
    assert json.loads(beside.read_text())["format"] == "dilnas.class_centroids"
    assert sum(len(rows) for rows in first.by_class) == 2 * BLOB_TRAIN_IMAGES  # two blobs per image
    again = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    assert not again.computed and again.path == beside
    assert all(np.array_equal(a, b) for a, b in zip(first.by_class, again.by_class, strict=True))

    # a label file changes: recomputed (and the cache rewritten)
    _, label_path = dataset.files[0]
    changed = np.zeros((24, 48), dtype=np.uint8)
    changed[10:14, 10:14] = 33  # bicycle (train id 18) only
    write_png(label_path, changed)
    stat = label_path.stat()
    os.utime(label_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    recomputed = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    assert recomputed.computed
    image_0 = {c for c, rows in enumerate(recomputed.by_class) if 0 in rows[:, 0].tolist()}
    assert image_0 == {18}
    assert [0, 11, 11] in recomputed.by_class[18].tolist()
    assert not class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([]))).computed

    # an unreadable cache is recomputed and rewritten
    beside.write_text("{not json")
    unreadable = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    assert unreadable.computed and unreadable.path == beside
    assert json.loads(beside.read_text())["format"] == "dilnas.class_centroids"
    # nowhere writable beside the data (a file where the folder would go): the user cache directory
    beside.unlink()
    beside.parent.rmdir()
    (cityscapes_blobs_root / ".dilnas-cache").write_text("not a folder")
    fallback = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    user_path = cache_paths(cityscapes_blobs_root, "train")[1]
    assert fallback.computed and fallback.path == user_path and user_path.is_relative_to(user_cache)
    assert not class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([]))).computed


def test_class_uniform_same_list_for_the_same_seed_and_epoch(cityscapes_blobs_root: Path) -> None:
    first, second = uniform_set(cityscapes_blobs_root), uniform_set(cityscapes_blobs_root)
    first.set_epoch(3, 5)
    second.set_epoch(3, 5)
    assert np.array_equal(first.samples, second.samples)
    for seed, epoch in [(3, 6), (4, 5)]:
        second.set_epoch(seed, epoch)
        assert not np.array_equal(first.samples, second.samples)
    second.set_epoch(3, 5)
    assert np.array_equal(first.samples, second.samples)


def batches(dataset, sampler, num_workers: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=num_workers, drop_last=True)
    return list(loader)


def test_class_uniform_resume_mid_epoch_sees_the_same_batches(cityscapes_blobs_root: Path) -> None:
    """What the Trainer does: SeededAugmentation's epoch rebuilds the list, the sampler skips start_batch."""
    seed, epoch, start_batch = 7, 2, 6
    full = SeededAugmentation(uniform_set(cityscapes_blobs_root), seed)
    sampler = ResumableDistributedSampler(len(full), seed)
    full.epoch = epoch
    sampler.set_epoch(epoch, 0, batch_size=2)
    uninterrupted = batches(full, sampler)
    # a new process: fresh objects that start at epoch 0, then jump to the interrupted epoch
    resumed_set = SeededAugmentation(uniform_set(cityscapes_blobs_root), seed)
    resumed_sampler = ResumableDistributedSampler(len(resumed_set), seed)
    resumed_set.epoch = epoch
    resumed_sampler.set_epoch(epoch, start_batch, batch_size=2)
    resumed = batches(resumed_set, resumed_sampler)
    assert len(resumed) == len(uninterrupted) - start_batch
    for (image_a, label_a), (image_b, label_b) in zip(uninterrupted[start_batch:], resumed, strict=True):
        assert torch.equal(image_a, image_b) and torch.equal(label_a, label_b)
    # worker processes receive the epoch's list (the data set is sent to them when the loader starts)
    resumed_sampler.set_epoch(epoch, 0, batch_size=2)
    in_workers = batches(resumed_set, resumed_sampler, num_workers=2)
    for (image_a, label_a), (image_b, label_b) in zip(uninterrupted, in_workers, strict=True):
        assert torch.equal(image_a, image_b) and torch.equal(label_a, label_b)


def test_class_uniform_ddp_ranks_take_disjoint_shards_of_one_list(cityscapes_blobs_root: Path) -> None:
    seed, epoch, world_size = 5, 3, 2
    lists, shards = [], []
    for rank in range(world_size):
        dataset = SeededAugmentation(uniform_set(cityscapes_blobs_root), seed)  # one per process
        dataset.epoch = epoch
        sampler = ResumableDistributedSampler(len(dataset), seed, rank, world_size)
        sampler.set_epoch(epoch)
        lists.append(dataset.dataset.samples)
        shards.append(list(sampler))
    assert np.array_equal(lists[0], lists[1])
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(BLOB_TRAIN_IMAGES))
    assert len(shards[0]) == len(shards[1]) == BLOB_TRAIN_IMAGES // 2


def test_class_uniform_settings_are_checked(cityscapes_blobs_root: Path) -> None:
    for pct in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match=r"data\.class_uniform_pct=.*\[0, 1\]"):
            build_dataset(blob_config(cityscapes_blobs_root, pct), "train", train=True, resampled=True)
    # the search splits fixed images: refused there, with the key named
    with pytest.raises(UserError, match=r"data\.class_uniform_pct=0\.5: .*dilnas-retrain only"):
        build_dataset(blob_config(cityscapes_blobs_root), "train", train=True)
    with pytest.raises(UserError, match=r"data\.class_uniform_pct=0\.5: .*data=synthetic"):
        build_dataset(DataConfig(class_uniform_pct=0.5), "train", train=True, resampled=True)
    # off (0) and evaluation sets: the plain data set
    assert isinstance(
        build_dataset(blob_config(cityscapes_blobs_root, 0.0), "train", train=True, resampled=True),
        CityscapesDataset,
    )
    assert isinstance(
        build_dataset(blob_config(cityscapes_blobs_root), "val", train=False), CityscapesDataset
    )


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda rows: [[[999, 1, 1]], *rows[1:]],  # an image index beyond the split
        lambda rows: [[[0, 1]], *rows[1:]],  # rows of the wrong shape
        lambda rows: [[["a", 1, 1]], *rows[1:]],  # not numbers
        lambda rows: [[[0, -5, 1]], *rows[1:]],  # a negative position
    ],
)
def test_a_cache_whose_contents_do_not_fit_is_recomputed(
    cityscapes_blobs_root: Path, user_cache: Path, corrupt
) -> None:
    first = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    data = json.loads(first.path.read_text())
    data["centroids"] = corrupt(data["centroids"])  # the key still matches the files
    first.path.write_text(json.dumps(data))
    again = class_centroids(CityscapesDataset(cityscapes_blobs_root, "train", Compose([])))
    assert again.computed
    assert all(np.array_equal(a, b) for a, b in zip(first.by_class, again.by_class, strict=True))
    assert json.loads(first.path.read_text())["centroids"] != data["centroids"]  # rewritten
