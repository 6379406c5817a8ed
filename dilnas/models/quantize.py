"""INT8 deployment: onnxruntime's static quantization of the deploy-mode ONNX model, calibrated on real images,
checked against the float model before it is written.

``quantize_int8`` takes the float ONNX model (``dilnas.models.deploy_formats.onnx_bytes``, dynamic batch, height
and width) and calibration images (normalised, as the network sees them), and returns the quantized model:
QDQ format (QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into integer kernels where it has
them), signed 8-bit weights per output channel, unsigned 8-bit activations with ranges from the calibration
images (MinMax). ``label_agreement`` is the check: the share of pixels whose predicted class (the argmax of the
logits) is the same for both models. Why the numbers are what they are, and how fast it runs:
``experiments/camvid/README.md`` ("INT8").
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import (
    INPUT_NAME,
    check_inputs,
    onnx_bytes,
    onnx_forward,
    onnx_session,
    require_onnx,
)
from dilnas.models.regseg import RegSeg
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write

Forward = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger (pre-processing, opset) at WARNING: the user has
    nothing to act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def quantize_int8(float_model: bytes, calibration: Sequence[torch.Tensor]) -> bytes:
    """The INT8 (QDQ) model of the serialized float ONNX model ``float_model``, its activation ranges calibrated
    on ``calibration`` (each a (1, 3, H, W) normalised image)."""
    require_onnx("quantize=int8")
    if not calibration:
        raise UserError("quantize=int8 needs at least one calibration image")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{INPUT_NAME: image.detach().cpu().numpy()} for image in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="dilnas-int8-") as folder, _quiet_quantizer():
        source, prepared, quantized = (
            Path(folder) / name for name in ("float.onnx", "pre.onnx", "int8.onnx")
        )
        source.write_bytes(float_model)
        try:  # the recommended pre-processing (graph optimisation, shape inference) where it applies
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception:
            prepared = source
        try:
            quantize_static(
                str(prepared),
                str(quantized),
                Images(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as error:  # onnxruntime raises many types
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"onnxruntime could not quantize the network: {type(error).__name__}: {message[:300]}"
            ) from None
        return quantized.read_bytes()


@torch.inference_mode()
def label_agreement(reference: Forward, candidate: Forward, images: Sequence[torch.Tensor]) -> float:
    """The share of pixels of ``images`` whose predicted class is the same under both forward passes."""
    same = total = 0
    for image in images:
        expected, found = reference(image).argmax(1), candidate(image).argmax(1)
        same += int((expected == found).sum())
        total += expected.numel()
    return same / total if total else float("nan")


def write_int8_onnx(
    eager: RegSeg,
    out: str | os.PathLike,
    calibration: Sequence[torch.Tensor],
    min_agreement: float,
    input_size: Sequence[int],
    seed: int = 0,
    check: Sequence[torch.Tensor] | None = None,
) -> float:
    """Write the INT8 ONNX model of ``eager``'s deploy-mode network to ``out``, atomically, once the written
    file, loaded back in onnxruntime, predicts the same class as the eager network on at least
    ``min_agreement`` of the pixels of the ``check`` images (None: the calibration images) (else UserError,
    nothing written); returns the agreement. The float model is exported at ``input_size`` (the file takes any
    size)."""
    eager = eager.cpu().eval()
    deployed = deploy_model(eager)
    (example, _) = check_inputs(input_size, eager.spec.stem.in_channels, seed)
    data = quantize_int8(onnx_bytes(deployed, example), calibration)
    measured: list[float] = []

    def verify(path: Path) -> None:
        session = onnx_session(path)
        images = check if check is not None else calibration
        agreement = label_agreement(eager, lambda batch: onnx_forward(session, batch), images)
        measured.append(agreement)
        if not agreement >= min_agreement:  # nan fails too
            which = "check" if check is not None else "calibration"
            raise UserError(
                f"{out}: the int8 model predicts the float network's class on {agreement:.2%} of the pixels of "
                f"{len(images)} {which} images (allowed: at least {min_agreement:.2%}); nothing written"
            )

    atomic_write(out, lambda handle: handle.write(data), verify)
    return measured[0]


@contextlib.contextmanager
def temporary_int8_session(
    model: nn.Module, example: torch.Tensor, threads: int | None = None
) -> Iterator[Any]:
    """An onnxruntime session of ``model``'s INT8 model (the float export fixed to ``example``'s shape,
    calibrated on ``example`` itself: for timing), from a temporary file."""
    with tempfile.TemporaryDirectory(prefix="dilnas-int8-") as folder:
        path = Path(folder) / "int8.onnx"
        path.write_bytes(quantize_int8(onnx_bytes(model, example, dynamic=False), list(example.split(1))))
        yield onnx_session(path, threads)
