"""Real CamVid (../shared/data/camvid, never committed): a batch through data=camvid and the camvid_lite preset
has the preset's sizes, the 11 classes and void as the ignore index. Skips where the data is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from torch.utils.data import DataLoader

from dilnas.cli import CONF_DIR, register_schemas, typed_config
from dilnas.data.factory import build_dataset
from dilnas.spec.labels import IGNORE_INDEX
from dilnas.spec.options import RetrainConfig
from tests.helpers import REPO

CAMVID = REPO.parent / "shared" / "data" / "camvid"
pytestmark = pytest.mark.skipif(not (CAMVID / "train").is_dir(), reason=f"real CamVid not at {CAMVID}")


@pytest.fixture(scope="module")
def config() -> RetrainConfig:
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("retrain", ["arch=camvid_lite.json", "+experiment=camvid_lite", f"data.root={CAMVID}"])
    GlobalHydra.instance().clear()
    return typed_config(cfg, RetrainConfig)


def test_the_files_are_camvid_native_size_with_11_classes_and_void() -> None:
    assert len(list((CAMVID / "train").glob("*.png"))) == 367
    assert len(list((CAMVID / "val").glob("*.png"))) == 101
    label = np.array(Image.open(next(iter(sorted((CAMVID / "trainannot").glob("*.png"))))))
    assert label.shape == (360, 480)
    assert set(np.unique(label)) <= set(range(12))


def test_a_training_batch_has_the_crop_and_void_is_ignored(config: RetrainConfig) -> None:
    dataset = build_dataset(config.data, "train", train=True)
    assert (len(dataset), dataset.num_classes) == (367, 11)
    torch.manual_seed(0)
    images, labels = next(iter(DataLoader(dataset, batch_size=8, shuffle=True)))
    assert images.shape == (8, 3, 192, 256) and images.dtype == torch.float32
    assert labels.shape == (8, 192, 256) and labels.dtype == torch.int64
    values = set(labels.unique().tolist())
    assert values <= set(range(11)) | {IGNORE_INDEX} and len(values - {IGNORE_INDEX}) >= 5
    assert abs(images.mean().item()) < 1.0  # normalised, not 0..255 or 0..1


def test_validation_images_are_evaluated_at_the_preset_size(config: RetrainConfig) -> None:
    dataset = build_dataset(config.data, "val", train=False)
    assert len(dataset) == 101
    image, label = dataset[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)  # native: the protocol evaluates there
    raw = np.array(Image.open(dataset.files[0][1]))
    # Void (11) is ignored, never a class: the share of ignored pixels follows the file's share of void.
    assert (label == IGNORE_INDEX).float().mean().item() == pytest.approx((raw == 11).mean(), abs=0.02)
    assert int(label[label != IGNORE_INDEX].max()) <= 10
