"""dilnas-predict: palettes, masks that are the network's argmax at the image's size, overlays, and its errors;
the retraining's TensorBoard pictures are checked in tests/commands/test_retrain.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dilnas.analysis.predictions import find_images, output_paths, predict_images
from dilnas.data import camvid
from dilnas.data.palettes import (
    CAMVID_PALETTE,
    CITYSCAPES_PALETTE,
    colourize,
    generic_palette,
    mask_image,
    overlay,
    palette_for,
    transparent_classes,
)
from dilnas.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dilnas.models.initialize import arch_entry, load_model
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.utils.checkpoints import save_checkpoint
from dilnas.utils.errors import UserError
from tests.helpers import TINY
from tests.helpers.networks import randomise_batchnorm

SIZES = {"street": (48, 64), "square": (40, 56)}  # stem -> (height, width) of the test images


def tiny_checkpoint(path: Path, num_classes: int) -> Path:
    """A tiny RegSeg with ``num_classes`` classes and varied BatchNorm, saved as a retraining saves it."""
    torch.manual_seed(0)
    model = RegSeg(load_arch(TINY).with_num_classes(num_classes))
    randomise_batchnorm(model)
    state = {"format": "dilnas.checkpoint", "model": model.state_dict(), "step": 0, **arch_entry(model.spec)}
    save_checkpoint(path, state)
    return path


def write_images(folder: Path) -> Path:
    """Two small images with structure (gradients, noise), one PNG and one JPEG, of different sizes."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for (stem, (height, width)), suffix in zip(SIZES.items(), (".png", ".jpg"), strict=True):
        rows, cols = np.mgrid[0:height, 0:width]
        pixels = np.stack([cols * 255 // width, rows * 255 // height, (rows * cols) % 256], axis=-1)
        pixels = np.clip(pixels + rng.integers(-40, 40, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{stem}{suffix}", quality=95)
    return folder


def reference_mask(
    model: RegSeg, path: Path, input_size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, margin of the best class over the second) of ``model`` on the image, computed here."""
    pixels = np.array(Image.open(path).convert("RGB"))
    image = torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 255
    if input_size is not None:
        image = F.interpolate(image, size=input_size, mode="bilinear", align_corners=False, antialias=True)
    image = (image - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        logits = F.interpolate(model(image), size=pixels.shape[:2], mode="bilinear", align_corners=False)[0]
    top = logits.topk(2, dim=0).values
    return logits.argmax(0).numpy(), (top[0] - top[1]).numpy()


def test_palettes_hold_the_datasets_colours_in_class_order():
    assert len(CITYSCAPES_PALETTE) == 19 and len(CAMVID_PALETTE) == 11
    assert CITYSCAPES_PALETTE[:3] == (
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
    )  # road, sidewalk, building
    assert CITYSCAPES_PALETTE[-1] == (119, 11, 32)  # bicycle
    assert CAMVID_PALETTE[:4] == ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128))  # sky..road
    assert CAMVID_PALETTE[-1] == (0, 128, 192)  # bicyclist
    assert palette_for(19).tolist() == [list(c) for c in CITYSCAPES_PALETTE]
    assert palette_for(11).tolist() == [list(c) for c in CAMVID_PALETTE]
    assert palette_for(19, "generic").tolist() == [list(c) for c in generic_palette(19)]
    for count in (1, 3, 12, 255):
        colours = generic_palette(count)
        assert len(set(colours)) == count and (0, 0, 0) not in colours  # distinct, never the ignore black
    assert generic_palette(3) == generic_palette(40)[:3]  # a class keeps its colour whatever the count
    with pytest.raises(UserError, match=r"palette=camvid: it colours the 11 classes .* predicts 3 classes"):
        palette_for(3, "camvid")
    with pytest.raises(UserError, match="256 classes"):
        palette_for(256)


def test_masks_are_palette_images_and_ignore_is_black():
    palette = palette_for(3)
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    assert colourize(mask, palette)[1, 1].tolist() == [0, 0, 0]
    image = mask_image(mask, palette)
    assert image.mode == "P" and np.array_equal(np.array(image), mask)
    assert np.array_equal(np.array(image.convert("RGB")), colourize(mask, palette))
    pixels = np.full((2, 2, 3), 200, dtype=np.uint8)
    blended = overlay(pixels, mask, palette, alpha=0.25)
    assert blended[0, 0].tolist() == np.rint(0.75 * 200 + 0.25 * palette[0]).tolist()
    assert blended[1, 1].tolist() == [200, 200, 200]  # no class: the image as it is
    # Named classes: the background transparent, a class named after a colour in that colour.
    names = ("background", "red", "green")
    named = palette_for(3, class_names=names)
    assert named[1].tolist() == [255, 0, 0] and transparent_classes(names) == (0,)
    clear = overlay(pixels, mask, named, alpha=0.25, transparent=transparent_classes(names))
    assert clear[0, 0].tolist() == [200, 200, 200]  # background: the image as it is
    assert clear[0, 1].tolist() == np.rint(0.75 * 200 + 0.25 * np.array([255, 0, 0])).tolist()
    # Data sets' names keep their data set's colours, by name as by count.
    assert palette_for(11, class_names=camvid.CLASS_NAMES).tolist() == palette_for(11).tolist()


def test_predict_in_process_at_native_size(tmp_path):
    model = load_model(TINY, tiny_checkpoint(tmp_path / "tiny.pt", 3))
    folder = write_images(tmp_path / "images")
    written = predict_images(
        model,
        output_paths(find_images(folder), tmp_path / "out"),
        palette_for(3),
        torch.device("cpu"),
        alpha=1.0,
    )
    assert [item.image.name for item in written] == ["square.jpg", "street.png"]  # sorted
    for item in written:
        mask = np.array(Image.open(item.mask))
        expected, margin = reference_mask(model, item.image, None)
        assert mask.shape == SIZES[item.image.stem]
        assert np.array_equal(mask[margin > 1e-4], expected[margin > 1e-4])
        # alpha=1: the overlay is the colour-coded mask itself
        assert np.array_equal(np.array(Image.open(item.overlay)), colourize(mask, palette_for(3)))


def test_predict_command_writes_masks_and_overlays(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt", 19)  # 19 classes: the Cityscapes palette
    folder = write_images(tmp_path / "images")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.predict",  # no arch=: the retraining checkpoint records it
            f"checkpoint={checkpoint}",
            f"images={folder}",
            f"out={out}",
            "input_size=[32,40]",
            "device=cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{out}: 2 masks") and "2/2 images" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "legend.png",  # no class names recorded here: "class 0" ... "class 18" in Cityscapes' colours
        "square_mask.png",
        "square_overlay.png",
        "street_mask.png",
        "street_overlay.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out", "tiny.pt"]  # no Hydra output
    model = load_model(TINY, checkpoint)
    palette = {tuple(colour) for colour in CITYSCAPES_PALETTE}
    for stem, suffix in (("street", ".png"), ("square", ".jpg")):
        mask = Image.open(out / f"{stem}_mask.png")
        overlay_image = Image.open(out / f"{stem}_overlay.png")
        height, width = SIZES[stem]
        assert mask.mode == "P" and mask.size == overlay_image.size == (width, height)
        assert {tuple(c) for c in np.array(mask.convert("RGB")).reshape(-1, 3)} <= palette
        expected, margin = reference_mask(model, folder / f"{stem}{suffix}", (32, 40))
        ids = np.array(mask)
        assert len(np.unique(expected)) > 1  # a mask of one class would prove little
        assert np.array_equal(ids[margin > 1e-4], expected[margin > 1e-4])
        assert (margin > 1e-4).mean() > 0.99


def test_the_architecture_comes_from_the_checkpoint_only_where_it_records_one(tmp_path):
    recorded = load_model(None, tiny_checkpoint(tmp_path / "tiny.pt", 3))
    assert recorded.spec == load_arch(TINY).with_num_classes(3)
    model = RegSeg(load_arch(TINY))
    save_checkpoint(tmp_path / "bare.pt", {"model": model.state_dict()})
    with pytest.raises(UserError, match=r"bare\.pt: records no architecture .* give arch="):
        load_model(None, tmp_path / "bare.pt")
    with pytest.raises(UserError, match="no architecture: give arch="):
        load_model(None)
    broken = {"model": model.state_dict(), **arch_entry(model.spec)}
    broken["arch"] = broken["arch"].replace('"stride"', '"strides"')
    save_checkpoint(tmp_path / "broken.pt", broken)
    with pytest.raises(UserError, match=r"broken\.pt \(its recorded architecture\)"):
        load_model(None, tmp_path / "broken.pt")


def test_predict_glob_matching_nothing_is_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.predict",
            f"arch={TINY}",
            "checkpoint=none.pt",
            f"images={tmp_path}/*.png",
            f"out={tmp_path / 'out'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dilnas-predict: error: images={tmp_path}/*.png: no file matches (expected a folder of images or a "
        "glob such as 'photos/*.jpg')"
    ]
    assert list(tmp_path.iterdir()) == []


def test_predict_refuses_bad_images_before_writing(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x.png")
    with pytest.raises(UserError, match=r"a/x.png and .*b/x.png have the same stem 'x'"):
        output_paths(find_images(f"{tmp_path}/*/*.png"), tmp_path / "out")
    with pytest.raises(UserError, match=r"the folder holds no \.png, \.jpg, \.jpeg files"):
        find_images(tmp_path)
    (tmp_path / "b" / "y.jpg").write_text("not an image")
    targets = output_paths(find_images(tmp_path / "b"), tmp_path / "out")
    with pytest.raises(UserError, match=r"b/y.jpg: cannot read image .*; expected a PNG or JPEG image$"):
        predict_images(RegSeg(load_arch(TINY)), targets, palette_for(3), torch.device("cpu"))
    assert not (tmp_path / "out").exists()  # x.png came first, but nothing was written


def test_predict_refuses_an_output_over_an_input_image(tmp_path):
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    for name in ("street.png", "street_mask.png"):  # the second is the first's mask name, and an input
        Image.new("RGB", (32, 32), (10, 20, 30)).save(images / name)
    before = {path.name: path.read_bytes() for path in images.iterdir()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.predict",
            f"arch={TINY}",
            "checkpoint=none.pt",
            f"images={images}",
            f"out={images}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"dilnas-predict: error: out: writing {images / 'street_mask.png'} would replace the input "
        f"{images / 'street_mask.png'}; choose another out="
    )
    assert {path.name: path.read_bytes() for path in images.iterdir()} == before


def test_predict_refuses_a_truncated_image_before_creating_the_output_folder(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(images / "a.png")
    Image.effect_noise((64, 48), 40).convert("RGB").save(images / "b.png")
    data = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])  # the header is intact, the pixels are cut
    targets = output_paths(find_images(images), tmp_path / "out")
    with pytest.raises(UserError, match=r"b.png: cannot read image .*; expected a PNG or JPEG image$"):
        predict_images(RegSeg(load_arch(TINY)), targets, palette_for(3), torch.device("cpu"))
    assert not (tmp_path / "out").exists()


def test_large_images_raise_no_pillow_warning_and_tiny_ones_no_error(tmp_path, monkeypatch):
    import warnings

    from PIL import Image

    from dilnas.data.common import read_image, read_image_size
    from dilnas.models.memory import estimate_bytes
    from dilnas.models.regseg import RegSeg
    from dilnas.spec.arch import load_arch

    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 pixels: Pillow would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image_size(path, verify=True) == (30, 40) and read_image(path).shape == (30, 40, 3)
    # A 1x1 input: the memory estimate runs the network in eval mode, where BatchNorm takes one value.
    weights, activations = estimate_bytes(lambda: RegSeg(load_arch(TINY)), (1, 3, 1, 1))
    assert weights > 0 and activations > 0
