"""Predictions you can look at: a network's class mask of each image, colour-coded, and an overlay on the image.

Each image goes through the evaluation transform (``dilnas.data.transforms.eval_transform``: an optional
resize to the network's input size, then the data pipeline's normalisation); the logits are brought back to the
image's own size (bilinear) before the argmax, so a mask always has its image's size. Per image ``<stem>`` two
PNGs are written, each atomically: ``<stem>_mask.png`` (a palette image: its pixels are the class ids, its
palette the class colours) and ``<stem>_overlay.png`` (the colours blended over the image).
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dilnas.data.common import read_image, read_image_size
from dilnas.data.palettes import mask_image, overlay
from dilnas.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from dilnas.models.memory import check_memory
from dilnas.models.regseg import RegSeg
from dilnas.spec.labels import IGNORE_INDEX
from dilnas.utils.errors import UserError, os_reason
from dilnas.utils.files import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
READABLE = "a PNG or JPEG image"  # what an input image must be, in error messages


@dataclass(frozen=True)
class Prediction:
    image: Path
    mask: Path  # <stem>_mask.png
    overlay: Path  # <stem>_overlay.png


def find_images(images: str | os.PathLike, setting: str = "images") -> list[Path]:
    """The image files of ``images``: a folder's .png/.jpg/.jpeg files (not its subfolders), or the files a
    glob pattern matches (``**`` included); sorted. UserError, naming the ``setting``, when there are none."""
    text = os.path.expanduser(str(images))
    if Path(text).is_dir():
        found = [p for p in Path(text).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not found:
            raise UserError(f"{setting}={images}: the folder holds no {', '.join(IMAGE_SUFFIXES)} files")
        return sorted(found)
    found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    if not found:
        raise UserError(
            f"{setting}={images}: no file matches (expected a folder of images or a glob such as 'photos/*.jpg')"
        )
    return sorted(found)


def calibration_images(
    images: str | os.PathLike,
    count: int,
    mean: Sequence[float],
    std: Sequence[float],
    size: tuple[int, int] | None = None,
    skip: int = 0,
    setting: str = "calibration",
) -> list[torch.Tensor]:
    """Images ``skip`` to ``skip + count`` of ``images`` (``find_images``, sorted) as the network sees them:
    each normalised and, with a ``size``, resized to it, a (1, 3, H, W) tensor."""
    paths = find_images(images, setting)[skip : skip + count]
    return [network_input(read_image(path, READABLE), mean, std, size)[None] for path in paths]


def network_input(
    pixels: np.ndarray, mean: Sequence[float], std: Sequence[float], size: tuple[int, int] | None = None
) -> torch.Tensor:
    """The (3, h, w) float tensor the network sees for the (H, W, 3) uint8 image ``pixels``: the evaluation
    transform of the data pipeline (resized to ``size`` if given, normalised with ``mean`` and ``std``)."""
    image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).to(torch.float32).div_(255.0)
    no_label = torch.full(pixels.shape[:2], IGNORE_INDEX, dtype=torch.int64)
    return eval_transform(mean, std, size=size)(image, no_label)[0]


def output_paths(images: Sequence[Path], out: str | os.PathLike) -> list[Prediction]:
    """Where each image's mask and overlay go; UserError when two images share a stem (their outputs would
    overwrite each other)."""
    out = Path(out)
    seen: dict[str, Path] = {}
    paths = []
    for image in images:
        if image.stem in seen:
            raise UserError(
                f"images: {seen[image.stem]} and {image} have the same stem {image.stem!r}, so their masks "
                f"would overwrite each other in {out}; predict them in separate runs (another out=)"
            )
        seen[image.stem] = image
        paths.append(Prediction(image, out / f"{image.stem}_mask.png", out / f"{image.stem}_overlay.png"))
    return paths


@torch.inference_mode()
def predict_mask(
    model: torch.nn.Module,
    pixels: np.ndarray,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The (H, W) uint8 class ids ``model`` predicts for the (H, W, 3) uint8 image ``pixels``, at its size."""
    height, width = pixels.shape[:2]
    image = network_input(pixels, mean, std, input_size)
    logits = model(image[None].to(device))  # (1, classes, h, w): the network's input size
    if logits.shape[-2:] != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def predict_images(
    model: RegSeg,
    predictions: Sequence[Prediction],
    palette: np.ndarray,
    device: torch.device,
    *,
    alpha: float = 0.5,
    transparent: Collection[int] = (),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Prediction]:
    """Write the mask and the overlay of every image of ``predictions`` (``output_paths``) with ``model`` (on
    ``device``; put in eval mode), the ``transparent`` classes left out of the overlays; ``progress(done,
    total)`` after each image.

    Every image's header is read first, so a file that is not an image stops the run before anything is
    written (the output folder included), and the memory the network needs is checked for the largest input."""
    if len(palette) != model.spec.num_classes:  # palette_for: one colour per class, at most 255 classes
        raise ValueError(f"predict_images: {len(palette)} colours for {model.spec.num_classes} classes")
    sizes = [read_image_size(p.image, READABLE, verify=True) for p in predictions]
    if sizes:  # the memory of one forward pass grows with the pixels: the largest input decides
        largest = input_size or max(sizes, key=lambda size: size[0] * size[1])
        shape = (1, model.spec.stem.in_channels, *largest)
        check_memory(lambda: RegSeg(model.spec), shape, device, f"predicting with {model.spec.name}")
    for folder in sorted({item.mask.parent for item in predictions}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"out={folder}: cannot write here: {os_reason(error)}") from None
    model.eval()
    for done, item in enumerate(predictions, start=1):
        pixels = read_image(item.image, READABLE)
        mask = predict_mask(model, pixels, device, mean, std, input_size)
        write_png(item.mask, mask_image(mask, palette))
        write_png(item.overlay, Image.fromarray(overlay(pixels, mask, palette, alpha, transparent)))
        if progress is not None:
            progress(done, len(predictions))
    return list(predictions)


def write_png(path: Path, image: Image.Image) -> None:
    """Write ``image`` as a PNG at ``path``, atomically."""
    buffer = io.BytesIO()  # encoded before the file is opened: a failure leaves nothing behind
    image.save(buffer, format="PNG")
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def input_normalisation(
    recorded: dict[str, list[float]] | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float], list[float], str]:
    """(mean, std, what was chosen in words): ``mean``/``std`` where given, else what the checkpoint records
    (``load_model`` reads it), else ImageNet's; a given value that differs from the record is said."""
    fallback = recorded or {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    chosen_mean = list(mean) if mean is not None else list(fallback["mean"])
    chosen_std = list(std) if std is not None else list(fallback["std"])
    values = f"mean {_short(chosen_mean)}, std {_short(chosen_std)}"
    if recorded is None:
        source = (
            "as given" if mean is not None and std is not None else "the checkpoint records none: ImageNet's"
        )
        return chosen_mean, chosen_std, f"normalisation {values} ({source})"
    if (chosen_mean, chosen_std) == (recorded["mean"], recorded["std"]):
        return chosen_mean, chosen_std, f"normalisation {values}, as the checkpoint records"
    return (
        chosen_mean,
        chosen_std,
        (
            f"normalisation {values} as given, not the checkpoint's record (mean {_short(recorded['mean'])}, "
            f"std {_short(recorded['std'])}, what the network was trained with)"
        ),
    )


def _short(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:.4g}" for value in values) + "]"
