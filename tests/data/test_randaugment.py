"""RandAugment "reduced": which ops are drawn and how strongly, what they do to the label, agreement with
Pillow (what the official code calls), and reproducibility from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from dilnas.data.factory import build_dataset
from dilnas.data.randaugment import ENHANCEMENTS, REDUCED_OPS, RandAugment, apply_op
from dilnas.data.transforms import IMAGENET_MEAN, Compose, Normalize
from dilnas.spec.options import Augment, DataConfig, DataName
from dilnas.train.sampling import SeededAugmentation
from dilnas.utils.errors import UserError

PHOTOMETRIC = [name for name in REDUCED_OPS if name != "rotate"]


def sample_pair(seed: int = 0, height: int = 40, width: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    generator = np.random.default_rng(seed)
    pixels = generator.integers(30, 220, (3, height, width))
    label = np.zeros((height, width), dtype=np.int64)
    label[: height // 2, width // 2 :] = 1
    label[height // 2 :, : width // 2] = 2
    label[height // 2 :, width // 2 :] = 3
    return torch.from_numpy(pixels).float() / 255, torch.from_numpy(label)


def test_randaug_draws_two_distinct_ops_from_the_reduced_set() -> None:
    augment = RandAugment()
    seen: dict[str, set[float]] = {name: set() for name in REDUCED_OPS}
    pairs = set()
    for seed in range(400):
        torch.manual_seed(seed)
        drawn = augment.draw()
        names = [name for name, _ in drawn]
        assert len(names) == 2 and len(set(names)) == 2 and set(names) <= set(REDUCED_OPS)
        pairs.add(tuple(names))
        for name, value in drawn:
            seen[name].add(round(value, 6))
    assert seen["rotate"] == {-6.0, 6.0}  # magnitude 0.2 of 30 degrees, either way
    for name in ENHANCEMENTS:
        assert seen[name] == {0.82, 1.18}, name  # 1 +/- 0.2 * 0.9
    assert seen["auto_contrast"] == seen["equalize"] == {0.0}
    assert len(pairs) == 7 * 6  # every ordered pair of distinct ops comes up


def test_randaug_photometric_ops_leave_the_label_alone() -> None:
    image, label = sample_pair()
    for name in PHOTOMETRIC:
        for value in (0.82, 1.18):
            out_image, out_label = apply_op(name, value, image, label)
            assert out_label is label, name
            assert out_image.shape == image.shape and not torch.equal(out_image, image), (name, value)
            assert out_image.min() >= 0.0 and out_image.max() <= 1.0


@pytest.mark.parametrize("degrees", [6.0, -6.0])
def test_randaug_rotate_warps_the_label_with_ignore_fill(degrees: float) -> None:
    image, label = sample_pair()
    image = (label.float() / 4 + 0.1).expand(3, -1, -1).clone()  # image and label drawn from one map
    out_image, out_label = apply_op("rotate", degrees, image, label)
    assert out_label.shape == label.shape and out_label.dtype == torch.int64
    assert set(out_label.unique().tolist()) == {0, 1, 2, 3, 255}  # nearest: no new class, 255 outside
    for row, col in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:  # the uncovered corners
        assert out_label[row, col] == 255
        assert torch.allclose(out_image[:, row, col], torch.tensor(IMAGENET_MEAN), atol=1e-6)
    assert not torch.equal(out_label, label)
    assert out_label[20, 30] == label[20, 30]  # the centre stays
    # image and label moved together: where the 3x3 neighbourhood of a label pixel is one class, the image
    # holds that class's value
    inside = out_label != 255
    windows = torch.nn.functional.unfold(out_label[None, None].float(), 3, padding=1)[0].view(9, 40, 60)
    uniform = inside & (windows == out_label.float()).all(0)
    uniform[[0, -1], :] = uniform[:, [0, -1]] = False  # the unfold's zero padding is not a neighbour
    expected = out_label.float() / 4 + 0.1
    assert uniform.sum() > 1500
    assert torch.allclose(out_image[0][uniform], expected[uniform], atol=1e-5)
    # Pillow's rotation (what the official code calls) gives the same label, pixel for pixel
    reference = Image.fromarray(label.numpy().astype(np.uint8)).rotate(
        degrees, resample=Image.Resampling.NEAREST, fillcolor=255
    )
    assert np.array_equal(out_label.numpy(), np.asarray(reference))


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()).float() / 255


def test_randaug_photometric_ops_follow_pillow() -> None:
    image, label = sample_pair()
    image = (image * 255).round() / 255  # on 8-bit levels, as Pillow sees it
    pil = to_pil(image)
    references = {
        "auto_contrast": lambda value: ImageOps.autocontrast(pil),
        "equalize": lambda value: ImageOps.equalize(pil),
        "color": lambda value: ImageEnhance.Color(pil).enhance(value),
        "contrast": lambda value: ImageEnhance.Contrast(pil).enhance(value),
        "brightness": lambda value: ImageEnhance.Brightness(pil).enhance(value),
        "sharpness": lambda value: ImageEnhance.Sharpness(pil).enhance(value),
    }
    for name, reference in references.items():
        for value in (0.82, 1.18):
            ours, _ = apply_op(name, value, image, label)
            # Pillow rounds to 8 bits (and the grey mean of contrast to an integer); we do not
            assert (ours - from_pil(reference(value))).abs().max() <= 1.5 / 255, (name, value)


class _OnePair(torch.utils.data.Dataset):
    def __init__(self, transform: Compose):
        self.transform = transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*sample_pair(index))


def test_randaug_same_seed_same_augmentation() -> None:
    image, label = sample_pair()
    augment = RandAugment()
    outputs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        outputs.append(augment(image, label))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[2][0])
    # inside a data set: SeededAugmentation makes sample i of an epoch the same wherever it is loaded
    dataset = SeededAugmentation(_OnePair(Compose([RandAugment(), Normalize()])), seed=1)
    dataset.epoch = 2
    first = [dataset[index] for index in range(8)]
    torch.manual_seed(123)  # the global state outside does not matter
    again = [dataset[index] for index in range(8)]
    for (image_a, label_a), (image_b, label_b) in zip(first, again, strict=True):
        assert torch.equal(image_a, image_b) and torch.equal(label_a, label_b)
    dataset.epoch = 3
    assert not all(
        torch.equal(a[0], b[0]) for a, b in zip(first, [dataset[i] for i in range(8)], strict=True)
    )


def test_randaug_in_the_training_transform(cityscapes_root: Path) -> None:
    config = DataConfig(
        name=DataName.cityscapes,
        root=str(cityscapes_root),
        scale_range=[32, 48],
        crop_size=[24, 24],
        augment=Augment.randaug_reduced,
    )
    dataset = build_dataset(config, "train", train=True)
    steps = dataset.transform.transforms  # type: ignore[attr-defined]
    names = [type(step).__name__ for step in steps]
    assert names == ["RandomShortSideScale", "RandomCrop", "RandomHorizontalFlip", "RandAugment", "Normalize"]
    assert steps[3].fill == tuple(config.mean)  # the rotation's fill becomes 0 after normalisation
    image, label = dataset[0]
    assert image.shape == (3, 24, 24) and label.shape == (24, 24)
    plain = build_dataset(DataConfig(name=DataName.cityscapes, root=str(cityscapes_root)), "train", True)
    assert len(plain.transform.transforms) == 4  # type: ignore[attr-defined]  # the default: none
    with pytest.raises(UserError, match=r"data\.augment=randaug_reduced: .*expected none"):
        build_dataset(DataConfig(augment=Augment.randaug_reduced), "train", train=True)
