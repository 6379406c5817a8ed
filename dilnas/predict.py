"""``dilnas-predict [arch=...] checkpoint=... images=DIR_OR_GLOB out=DIR``: what a trained network sees, per image a
colour-coded mask (``<stem>_mask.png``) and an overlay on the image (``<stem>_overlay.png``) in ``out``.

The palette follows the network's class count (Cityscapes' colours for 19 classes, CamVid's for 11, distinct
fixed colours otherwise) unless ``palette=`` says otherwise; ``dilnas.analysis.predictions`` does the work.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from dilnas.analysis.predictions import (
    Prediction,
    find_images,
    input_normalisation,
    output_paths,
    predict_images,
)
from dilnas.cli import hydra_command, typed_config
from dilnas.data.palettes import palette_for
from dilnas.models.initialize import load_model
from dilnas.spec.tool_options import PredictConfig
from dilnas.train.distributed import resolve_device
from dilnas.utils.files import refuse_writing_over_inputs

PROGRESS_EVERY = 10  # images between two progress lines


def predict(config: PredictConfig) -> list[Prediction]:
    """Write every image's mask and overlay into ``config.out``; returns the paths, in image order."""
    device = resolve_device(config.device)
    images = find_images(config.images)
    targets = output_paths(images, config.out)
    written_files = [path for target in targets for path in (target.mask, target.overlay)]
    refuse_writing_over_inputs(written_files, [*images, config.checkpoint, config.arch])
    model = load_model(config.arch, config.checkpoint, allow_gaps=config.allow_gaps)
    palette = palette_for(model.spec.num_classes, config.palette)

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
        mean=mean,
        std=std,
        input_size=size,
        progress=progress,
    )
    print(
        f"{Path(config.out)}: {len(written)} masks (<stem>_mask.png) and {len(written)} overlays "
        f"(<stem>_overlay.png), {model.spec.num_classes} classes"
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
