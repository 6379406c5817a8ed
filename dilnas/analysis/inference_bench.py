"""Forward-pass benchmark of a fixed RegSeg: eager fp32 against deploy mode, side by side in one run.

The last row, when asked for, runs the deploy network exported to ONNX (a temporary file, the shape of the
input fixed) in onnxruntime with its CPUExecutionProvider and as many threads as torch uses, whatever the
device of the other rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from dilnas.analysis.timing import time_callable
from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import onnx_forward, temporary_onnx_session
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.utils.tables import format_table


@dataclass(frozen=True)
class InferenceRow:
    mode: str
    median_ms: float
    min_ms: float
    fps: float
    speedup: float  # eager fp32 median / this median, measured in the same run
    max_abs_diff: float  # against eager fp32 outputs on the same input


ONNXRUNTIME_ROW = "onnxruntime fp32 (CPU)"


def _variants(device: torch.device) -> list[tuple[str, bool, bool, bool]]:
    """(name, deploy, channels_last, amp) of each timed variant."""
    variants = [
        ("eager fp32", False, False, False),
        ("deploy fp32", True, False, False),
        ("deploy fp32 channels_last", True, True, False),
    ]
    if device.type == "cuda":
        variants += [
            ("eager amp fp16", False, False, True),
            ("deploy amp fp16", True, False, True),
            ("deploy amp fp16 channels_last", True, True, True),
        ]
    return variants


def bench_inference(
    spec: ArchSpec,
    input_size: Sequence[int],
    device: torch.device,
    batch_size: int = 1,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
    onnxruntime: bool = False,
) -> list[InferenceRow]:
    """Rows in order: eager fp32 (the baseline of every speedup and difference), deploy fp32, deploy fp32
    channels_last (and their AMP fp16 versions on CUDA), then ``onnxruntime`` (needs dilnas[deploy])."""
    torch.manual_seed(seed)
    eager = RegSeg(spec).to(device).eval()
    x = torch.randn(batch_size, spec.stem.in_channels, *input_size, device=device)
    with torch.inference_mode():
        reference = eager(x).float()
    rows: list[InferenceRow] = []
    for name, deploy, channels_last, amp in _variants(device):
        model = deploy_model(eager, channels_last) if deploy else eager
        inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        autocast = torch.autocast(device.type, dtype=torch.float16) if amp else contextlib.nullcontext()

        def forward(model=model, inputs=inputs, autocast=autocast) -> torch.Tensor:
            with torch.inference_mode(), autocast:
                return model(inputs)

        rows.append(_timed_row(name, forward, reference, device, batch_size, warmup, repeats, rows))
    if onnxruntime:
        cpu = torch.device("cpu")
        deployed, images = deploy_model(eager).to(cpu), x.to(cpu)
        with temporary_onnx_session(deployed, images, threads=torch.get_num_threads()) as session:
            rows.append(
                _timed_row(
                    ONNXRUNTIME_ROW,
                    lambda: onnx_forward(session, images),
                    reference.to(cpu),
                    cpu,
                    batch_size,
                    warmup,
                    repeats,
                    rows,
                )
            )
    return rows


def _timed_row(
    name: str,
    forward: Callable[[], torch.Tensor],
    reference: torch.Tensor,
    device: torch.device,
    batch_size: int,
    warmup: int,
    repeats: int,
    rows: list[InferenceRow],
) -> InferenceRow:
    """Time ``forward`` on ``device`` and compare its output with ``reference``; the first of ``rows`` is
    the baseline of the speedup."""
    difference = (forward().float() - reference).abs().max().item()
    timing = time_callable(forward, device, warmup, repeats)
    baseline = rows[0].median_ms if rows else timing.median_ms
    return InferenceRow(
        mode=name,
        median_ms=timing.median_ms,
        min_ms=timing.min_ms,
        fps=1000.0 * batch_size / timing.median_ms,
        speedup=baseline / timing.median_ms,
        max_abs_diff=difference,
    )


def format_inference(rows: list[InferenceRow]) -> str:
    return format_table(
        ["mode", "median ms", "min ms", "img/s", "speedup", "max |diff|"],
        [
            [
                r.mode,
                f"{r.median_ms:.1f}",
                f"{r.min_ms:.1f}",
                f"{r.fps:.2f}",
                f"{r.speedup:.2f}x",
                f"{r.max_abs_diff:.1e}",
            ]
            for r in rows
        ],
    )


def rows_as_dicts(rows: list[InferenceRow]) -> list[dict]:
    return [asdict(row) for row in rows]
