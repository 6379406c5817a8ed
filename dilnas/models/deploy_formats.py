"""Deployable files of a RegSeg in deploy mode (BatchNorm folded, eval): ONNX and TorchScript, each loaded back
and checked against the eager network before it is written.

ONNX goes through ``torch.onnx.export(..., dynamo=True)``, the exporter built on ``torch.export``: the default
since torch 2.9 and the one PyTorch maintains (the TorchScript-based ``dynamo=False`` exporter is deprecated
and warns so). It needs ``onnxscript`` besides ``onnx``. For this network it keeps the batch, the height and
the width dynamic, odd sizes included (the strided convolutions and the decoder's resizes become shape
expressions), so one file takes any input size. Opset 18: the opset the exporter's operator library
(torchlib) is written for (a lower one would go through ONNX's version converter); onnxruntime runs it since
1.14. It exports several times slower than the deprecated exporter (seconds, mostly a fixed cost per
process) and its files compute the same function (measured on the synthetic and paper architectures: both
within 2e-6 of the eager network).

TorchScript is a ``torch.jit.trace`` of the deploy network (TorchScript is deprecated in favour of
``torch.export``, yet it is what libtorch in C++ and many serving tools load). The trace records the input's
sizes as operations, so it too takes any batch, height and width.

Both files: input ``images`` (N, 3, H, W) float32, normalised as in training; output ``logits``
(N, classes, H, W). The check loads the written file back (onnxruntime with the CPUExecutionProvider, or
``torch.jit.load``) and runs it on two random inputs, a batch of 2 at the requested size and a batch of 1 at
(H // 2 + 1, W // 2 + 1) (the dynamic dimensions); the largest logit difference must be within
``TOLERANCE`` of the largest eager logit (a relative bound: float32 rounding grows with the logits, and trained
networks' logits reach tens to hundreds), or nothing is written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from dilnas.models.deploy import deploy_model
from dilnas.models.regseg import RegSeg
from dilnas.spec.settings import parse_choice
from dilnas.spec.tool_options import DeployFormat
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write

OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
TOLERANCE = 1e-5  # largest |logit difference| allowed, relative to the largest |eager logit|
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the exporter needs the first two, the check the third
INSTALL_HINT = 'pip install "dilnas[deploy]"'
EXAMPLE_BATCH = 2  # torch.export would specialise a dimension of size 1 instead of keeping it dynamic


@dataclass(frozen=True)
class Check:
    """One comparison of the written file with the eager network."""

    shape: tuple[int, ...]  # of the input
    max_abs_diff: float
    max_abs_logit: float = 1.0  # the largest |eager logit|, the scale of the relative bound

    @property
    def relative_diff(self) -> float:
        """The largest difference relative to the largest eager logit (``TOLERANCE`` bounds it)."""
        return self.max_abs_diff / max(self.max_abs_logit, 1.0)


def missing_onnx_packages() -> list[str]:
    """The packages of ``ONNX_PACKAGES`` that are not installed."""
    return [name for name in ONNX_PACKAGES if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent that does not import; a module set to None in sys.modules
        return False


def require_onnx(what: str) -> None:
    """UserError naming what needs ONNX and the missing packages, with the install line."""
    missing = missing_onnx_packages()
    if missing:
        raise UserError(f"{what} needs {', '.join(missing)}, not installed: {INSTALL_HINT}")


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of a third-party error's message (torch.export's run over many lines), shortened."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx logs one warning per torchvision operator it cannot register (torchvision is not needed
    here); torch.export and torch.jit warn about their own deprecations: none of it is the user's."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(model: nn.Module, example: torch.Tensor, dynamic: bool = True) -> bytes:
    """``model`` (eval mode) as a serialized ONNX model (opset ``OPSET``, input ``images``, output ``logits``);
    ``dynamic``: batch, height and width named ``batch``, ``height``, ``width`` and left free, else fixed to
    ``example``'s."""
    require_onnx("ONNX export")
    dynamic_shapes = ({0: "batch", 2: "height", 3: "width"},) if dynamic else None
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                dynamo=True,
                external_data=False,  # RegSeg is megabytes, far from protobuf's 2 GB limit
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as error:  # torch.export and the translation raise many types
        raise UserError(
            f"torch.onnx could not export the network (torch {torch.__version__}; dilnas-deploy is tested with "
            f"2.13): {type(error).__name__}: {_first_line(error)}"
        ) from None
    if program is None:  # only the TorchScript-based exporter returns nothing
        raise UserError("torch.onnx returned no ONNX program")
    return program.model_proto.SerializeToString()


def onnx_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession of the model at ``path`` on the CPUExecutionProvider (``threads``:
    its intra-op threads; None: onnxruntime's default)."""
    require_onnx("onnxruntime")
    try:
        import onnxruntime  # an optional dependency (dilnas[deploy]), imported where it is needed
    except ImportError as error:
        raise UserError(f"onnxruntime does not import ({_first_line(error)}): {INSTALL_HINT}") from None

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_forward(session: Any, images: torch.Tensor) -> torch.Tensor:
    """The logits an onnxruntime session computes for ``images`` (on the CPU)."""
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.detach().cpu().numpy()})
    return torch.from_numpy(logits)


def torchscript_module(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with _quiet_exporter(), torch.no_grad():
        # check_trace would run the model again on the same input; the check below runs two other inputs
        return torch.jit.trace(model, example, check_trace=False)


def _save_torchscript(module: torch.jit.ScriptModule, handle: IO[bytes]) -> None:
    with _quiet_exporter():
        torch.jit.save(module, handle)


@contextlib.contextmanager
def temporary_onnx_session(
    model: nn.Module, example: torch.Tensor, threads: int | None = None
) -> Iterator[Any]:
    """An onnxruntime session of ``model`` exported (fixed to ``example``'s shape) to a temporary file."""
    with tempfile.TemporaryDirectory(prefix="dilnas-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx_bytes(model, example, dynamic=False))
        yield onnx_session(path, threads)


def check_inputs(input_size: Sequence[int], in_channels: int, seed: int) -> list[torch.Tensor]:
    """A batch of ``EXAMPLE_BATCH`` at ``input_size`` (H, W) and a batch of 1 at (H // 2 + 1, W // 2 + 1)."""
    height, width = input_size
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(EXAMPLE_BATCH, in_channels, height, width, generator=generator),
        torch.randn(1, in_channels, height // 2 + 1, width // 2 + 1, generator=generator),
    ]


def write_deployable(
    eager: RegSeg,
    fmt: DeployFormat,
    out: str | os.PathLike,
    input_size: Sequence[int],
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> list[Check]:
    """Write the deploy-mode network of ``eager`` (moved to the CPU, eval mode) to ``out`` as ``fmt``
    (``onnx`` or ``torchscript``), atomically, once the file it wrote reproduces ``eager``'s logits to
    ``tolerance`` of the largest eager logit (else UserError and nothing written). Returns the checks."""
    fmt = parse_choice(DeployFormat, fmt, "format")
    if fmt is DeployFormat.onnx:
        require_onnx("format=onnx")
    eager = eager.cpu().eval()
    deployed = deploy_model(eager)
    inputs = check_inputs(input_size, eager.spec.stem.in_channels, seed)
    with torch.inference_mode():
        expected = [eager(images) for images in inputs]
    write: Callable[[IO[bytes]], object]
    if fmt is DeployFormat.onnx:
        data = onnx_bytes(deployed, inputs[0])
        write = lambda handle: handle.write(data)  # noqa: E731
    else:
        traced = torchscript_module(deployed, inputs[0])
        write = lambda handle: _save_torchscript(traced, handle)  # noqa: E731
    checks: list[Check] = []

    def check(path: Path) -> None:
        forward = _loader(fmt, path, out)
        for images, reference in zip(inputs, expected, strict=True):
            shape = "x".join(str(size) for size in images.shape)
            try:
                with torch.inference_mode():
                    logits = forward(images)
            except Exception as error:  # onnxruntime's and TorchScript's own error types
                raise UserError(
                    f"{out}: the {fmt.value} model failed on a {shape} input ({type(error).__name__}: "
                    f"{_first_line(error)}); nothing written"
                ) from None
            if logits.shape != reference.shape:
                raise UserError(
                    f"{out}: the {fmt.value} model gave logits of shape {tuple(logits.shape)} for a {shape} input, the "
                    f"eager network {tuple(reference.shape)}; nothing written"
                )
            difference = (logits.float() - reference).abs().max().item()
            measured = Check(tuple(images.shape), difference, reference.abs().max().item())
            checks.append(measured)
            if not measured.relative_diff <= tolerance:  # nan fails too
                raise UserError(
                    f"{out}: the {fmt.value} model's logits differ from the eager network's by up to {difference:.1e} "
                    f"on a {shape} input, {measured.relative_diff:.1e} of the largest eager logit "
                    f"({measured.max_abs_logit:.3g}; allowed: {tolerance:.0e} of it); nothing written"
                )

    atomic_write(out, write, check)
    return checks


def _loader(fmt: DeployFormat, path: Path, out: str | os.PathLike) -> Callable[[torch.Tensor], torch.Tensor]:
    """The forward pass of the file at ``path``, loaded as a deployment would load it."""
    try:
        if fmt is DeployFormat.onnx:
            session = onnx_session(path)
            return lambda images: onnx_forward(session, images)
        with _quiet_exporter():
            return torch.jit.load(str(path), map_location="cpu")
    except UserError:
        raise
    except Exception as error:
        raise UserError(
            f"{out}: the written {fmt.value} file does not load ({type(error).__name__}: {_first_line(error)}); "
            "nothing written"
        ) from None
