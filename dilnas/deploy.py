"""``dilnas-deploy [arch=...] [checkpoint=...] [format=onnx|torchscript] [input_size=[H,W]] out=FILE``: the
deploy-mode network (every BatchNorm folded into its convolution, eval mode) as an ONNX or TorchScript file;
with ``quantize=int8 calibration=IMAGES``, onnxruntime's INT8 model (``dilnas.models.quantize``).

The file is written atomically, and only once it has been loaded back (onnxruntime, or torch.jit.load) and has
reproduced the eager network's logits to 1e-5 of the largest logit on random inputs; the measured difference
is printed. Input ``images`` (N, 3, H, W), output ``logits`` (N, classes, H, W), any N, H and W. An INT8
model takes one size, ``input_size`` with batch 1, and is written once its labels agree with the eager
network's on at least ``min_agreement`` of the pixels of ``check_images`` images it was not calibrated on
(both sets resized to ``input_size``); the agreement is printed. ONNX needs the ``deploy``
extra (``pip install "dilnas[deploy]"``); which exporter and opset, and why:
``dilnas.models.deploy_formats``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from dilnas.analysis.predictions import calibration_images, input_normalisation
from dilnas.cli import hydra_command, typed_config
from dilnas.models.deploy_formats import (
    EXAMPLE_BATCH,
    OPSET,
    TOLERANCE,
    Check,
    require_onnx,
    write_deployable,
)
from dilnas.models.initialize import load_model
from dilnas.models.memory import check_memory
from dilnas.models.quantize import write_int8_onnx
from dilnas.models.regseg import RegSeg
from dilnas.spec.tool_options import DeployConfig, DeployFormat, DeployQuantize
from dilnas.utils.errors import UserError
from dilnas.utils.files import refuse_writing_over_inputs

log = logging.getLogger("dilnas")


def deploy(config: DeployConfig) -> list[Check]:
    """Write ``config.out``; returns the checks of the written file against the eager network."""
    refuse_writing_over_inputs([Path(config.out)], [config.checkpoint, config.arch])
    int8 = config.quantize is DeployQuantize.int8
    if int8 and config.format is not DeployFormat.onnx:
        raise UserError(
            f"quantize=int8: only with format=onnx (onnxruntime's quantization), not {config.format.value}"
        )
    if int8 and config.calibration is None:
        raise UserError(
            "quantize=int8 needs calibration=IMAGES: a folder or glob of training images that set the int8 ranges"
        )
    if config.format is DeployFormat.onnx:
        require_onnx("format=onnx")  # before loading anything
    torch.manual_seed(config.seed)  # the initial weights, which a checkpoint replaces
    model = load_model(config.arch, config.checkpoint, allow_gaps=config.allow_gaps)
    if config.checkpoint is None:
        log.warning("checkpoint=null: the file holds random initial weights (seed=%d)", config.seed)
    spec = model.spec
    shape = (EXAMPLE_BATCH, spec.stem.in_channels, *config.input_size)
    check_memory(lambda: RegSeg(spec), shape, torch.device("cpu"), f"checking {spec.name}")
    if int8:
        return _deploy_int8(model, config)
    checks = write_deployable(model, config.format, config.out, config.input_size, config.seed)
    kind = f"ONNX (opset {OPSET})" if config.format is DeployFormat.onnx else "TorchScript"
    worst = max(checks, key=lambda check: check.relative_diff)
    shapes = " and ".join("x".join(map(str, check.shape)) for check in checks)
    print(
        f"{Path(config.out)}: {spec.name} as {kind}, images (N,3,H,W) -> logits (N,{spec.num_classes},H,W); "
        f"max |diff| against the eager network {worst.max_abs_diff:.1e}, {worst.relative_diff:.1e} of the "
        f"largest logit (allowed {TOLERANCE:.0e}) on {shapes}"
    )
    _, _, note = input_normalisation(model.normalisation, None, None)
    print(f"{Path(config.out)}: feed it images {note}")
    return checks


def _deploy_int8(model: RegSeg, config: DeployConfig) -> list[Check]:
    mean, std, note = input_normalisation(model.normalisation, None, None)
    source = config.calibration
    assert source is not None  # checked by deploy
    height, width = config.input_size
    calibration = calibration_images(source, config.calibration_images, mean, std, (height, width))
    check = calibration_images(source, config.check_images, mean, std, (height, width), skip=len(calibration))
    checked = f"{len(check)} other images" if check else f"the {len(calibration)} calibration images"
    agreement = write_int8_onnx(model, config.out, calibration, config.min_agreement, check=check or None)
    print(
        f"{Path(config.out)}: {model.spec.name} as ONNX int8 (opset {OPSET}, QDQ), images (1,3,{height},{width}) "
        f"-> logits (1,{model.spec.num_classes},{height},{width}), this input size only; calibrated on "
        f"{len(calibration)} images of {source} resized to it; on {checked} it labels {agreement:.2%} of the "
        f"pixels as the float network does (allowed: at least {config.min_agreement:.2%})"
    )
    print(f"{Path(config.out)}: feed it images {note}")
    return []


def run(cfg: DictConfig) -> None:
    deploy(typed_config(cfg, DeployConfig))


EXAMPLES = (
    "dilnas-deploy checkpoint=runs/retrain/DATE/checkpoints/best.pt out=regseg.onnx",
    "dilnas-deploy arch=exp48_decoder26 checkpoint=regseg_exp48.pth format=torchscript "
    "input_size=[1024,2048] out=exp48.pt",
    "dilnas-deploy checkpoint=runs/retrain/DATE/checkpoints/best.pt quantize=int8 "
    "calibration=data/train/ out=regseg_int8.onnx",
)
main = hydra_command("dilnas-deploy", "deploy", run, EXAMPLES)

if __name__ == "__main__":
    main()
