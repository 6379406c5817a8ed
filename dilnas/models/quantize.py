"""INT8 deployment: onnxruntime's static quantization of the deploy-mode ONNX model, calibrated on real images,
checked against the float model before it is written.

``int8_network`` prepares the deploy-mode network for it: every squeeze-excitation average becomes an average
pool over the whole map (``SqueezeExcite.pool_by_kernel``, the same numbers), which exports as an ONNX
``AveragePool`` that onnxruntime runs in INT8; as a plain mean it is a float ``ReduceMean`` on dequantized maps,
and took a fifth of the INT8 model's time. An average pool of the whole map needs the map's size, so the INT8
file is exported for one input size (``input_size``, batch 1).

``quantize_int8`` takes that float ONNX model (``dilnas.models.deploy_formats.onnx_bytes``) and calibration
images (normalised, as the network sees them, at that size) and returns the quantized model: QDQ format
(QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into integer kernels), signed 8-bit weights per
output channel, unsigned 8-bit activations with ranges from the calibration images (MinMax). The classifier
and the last resize stay in float (``float_head``): the logits are the output, and quantizing them only adds a
conversion before the float resize to the input size. ``label_agreement`` is the check: the share of pixels
whose predicted class (the argmax of the logits) is the same for both models. Why the numbers are what they
are, and how fast it runs: ``experiments/camvid/README.md`` ("INT8").
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dilnas.models.blocks import SqueezeExcite
from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import (
    INPUT_NAME,
    onnx_bytes,
    onnx_forward,
    onnx_session,
    require_onnx,
)
from dilnas.models.regseg import RegSeg
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write

Forward = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger("dilnas")


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


def int8_network(deployed: nn.Module) -> nn.Module:
    """A copy of the deploy-mode network whose squeeze-excitation averages export as average pools."""
    network = copy.deepcopy(deployed).eval()
    for module in network.modules():
        if isinstance(module, SqueezeExcite):
            module.pool_by_kernel = True
    return network


def float_head(model: Any) -> list[str]:
    """The names of the ONNX nodes that stay in float: the last convolution (the classifier) and the last
    resize (the logits to the input size)."""
    last = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Resize"):
            last[node.op_type] = node.name
    return list(last.values())


def quantize_int8(float_model: bytes, calibration: Sequence[torch.Tensor]) -> bytes:
    """The INT8 (QDQ) model of the serialized float ONNX model ``float_model``, its activation ranges calibrated
    on ``calibration`` (normalised batches of the model's input shape), its head in float."""
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
        except Exception as error:  # optional: quantize the model as exported
            log.info("int8: onnxruntime's pre-processing skipped (%s: %s)", type(error).__name__, error)
            prepared = source
        import onnx

        try:
            quantize_static(
                str(prepared),
                str(quantized),
                Images(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,  # u8 activations, s8 weights: the fast x86 kernels
                weight_type=QuantType.QInt8,
                nodes_to_exclude=float_head(onnx.load(str(prepared))),
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
    check: Sequence[torch.Tensor] | None = None,
) -> float:
    """Write the INT8 ONNX model of ``eager``'s deploy-mode network to ``out``, atomically, for the input size of
    the ``calibration`` images (batch 1), once the written file, loaded back in onnxruntime, predicts the same
    class as the eager network on at least ``min_agreement`` of the pixels of the ``check`` images (None: the
    calibration images) (else UserError, nothing written); returns the agreement."""
    eager = eager.cpu().eval()
    sizes = {tuple(image.shape) for image in [*calibration, *(check or [])]}
    if len(sizes) != 1:
        raise UserError(f"quantize=int8: the calibration and check images differ in size: {sorted(sizes)}")
    (shape,) = sizes
    network = int8_network(deploy_model(eager))
    data = quantize_int8(onnx_bytes(network, torch.zeros(shape), dynamic=False), calibration)
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
    """An onnxruntime session of the INT8 model of the deploy-mode ``model`` (``int8_network``, fixed to
    ``example``'s shape, calibrated on ``example`` itself: for timing), from a temporary file."""
    with tempfile.TemporaryDirectory(prefix="dilnas-int8-") as folder:
        path = Path(folder) / "int8.onnx"
        float_model = onnx_bytes(int8_network(model), example, dynamic=False)
        path.write_bytes(quantize_int8(float_model, [example]))
        yield onnx_session(path, threads)
