"""``dilnas-predict [arch=...] checkpoint=... images=DIR_OR_GLOB out=DIR``: what a trained network sees, per image a
colour-coded mask (``<stem>_mask.png``) and an overlay on the image (``<stem>_overlay.png``) in ``out``.

The palette follows the class names a dilnas checkpoint records (a class named after a colour in that colour,
a background class transparent in the overlays), else the class count (Cityscapes' colours for 19 classes,
CamVid's for 11, distinct fixed colours otherwise), unless ``palette=`` says otherwise; ``legend.png`` in
``out`` names the colours. ``dilnas.analysis.predictions`` does the work.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig
from PIL import Image

from dilnas.analysis.predictions import (
    Prediction,
    find_images,
    input_normalisation,
    output_paths,
    predict_images,
    write_png,
)
from dilnas.cli import hydra_command, typed_config
from dilnas.data.palettes import legend_image, palette_for, transparent_classes
from dilnas.models.initialize import load_model
from dilnas.spec.tool_options import PredictConfig
from dilnas.train.distributed import resolve_device
from dilnas.utils.files import refuse_writing_over_inputs

PROGRESS_EVERY = 10  # images between two progress lines
LEGEND = "legend.png"  # the classes' colours and names, beside the predictions
LEGEND_WIDTH = 640


def predict(config: PredictConfig) -> list[Prediction]:
    """Write every image's mask and overlay into ``config.out``; returns the paths, in image order."""
    device = resolve_device(config.device)
    images = find_images(config.images)
    targets = output_paths(images, config.out)
    legend = Path(config.out) / LEGEND
    written_files = [path for target in targets for path in (target.mask, target.overlay)] + [legend]
    refuse_writing_over_inputs(written_files, [*images, config.checkpoint, config.arch])
    model = load_model(config.arch, config.checkpoint, allow_gaps=config.allow_gaps)
    names = model.class_names or tuple(f"class {i}" for i in range(model.spec.num_classes))
    palette = palette_for(model.spec.num_classes, config.palette, model.class_names, model.class_colours)
    transparent = transparent_classes(model.class_names)

    def progress(done: int, total: int) -> None:
        if done % PROGRESS_EVERY == 0 or done == total:
            print(f"dilnas-predict: {done}/{total} images", file=sys.stderr, flush=True)

    size = (config.input_size[0], config.input_size[1]) if config.input_size else None
    mean, std, note = input_normalisation(model.normalisation, config.mean, config.std)
    print(f"dilnas-predict: {note}", file=sys.stderr)
    written = predict_images(
        model.to(device),
        targets,
        palette,
        device,
        alpha=config.alpha,
        transparent=transparent,
        mean=mean,
        std=std,
        input_size=size,
        progress=progress,
    )
    write_png(legend, Image.fromarray(legend_image(names, palette, transparent, width=LEGEND_WIDTH)))
    print(
        f"{Path(config.out)}: {len(written)} masks (<stem>_mask.png) and {len(written)} overlays "
        f"(<stem>_overlay.png), {model.spec.num_classes} classes (colours: {legend.name})"
    )
    return written


def run(cfg: DictConfig) -> None:
    predict(typed_config(cfg, PredictConfig))


EXAMPLES = (
    "dilnas-predict checkpoint=runs/retrain/DATE/checkpoints/best.pt images=photos/ out=predictions/",
    "dilnas-predict arch=exp48_decoder26 checkpoint=regseg_exp48.pth 'images=frames/*.jpg' out=masks "
    "input_size=[1024,2048] alpha=0.6 device=cuda",
)
main = hydra_command("dilnas-predict", "predict", run, EXAMPLES)

if __name__ == "__main__":
    main()
