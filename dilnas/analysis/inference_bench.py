"""Forward-pass benchmark of a fixed RegSeg: eager fp32 against deploy mode, side by side in one run.

The last rows, when asked for, run the deploy network exported to ONNX (a temporary file, the shape of the
input fixed) in onnxruntime with its CPUExecutionProvider and as many threads as torch uses, whatever the
device of the other rows: as float32, and quantized to INT8 (``dilnas.models.quantize``, calibrated on the
benchmark's own random input: the ranges do not change the speed; for accuracy calibrate on real images with
``dilnas-deploy quantize=int8``). The INT8 row also gives its speed relative to the float onnxruntime row,
measured round by round.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from dilnas.analysis.timing import time_alternating
from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import onnx_forward, temporary_onnx_session
from dilnas.models.quantize import temporary_int8_session
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.utils.tables import format_table


@dataclass(frozen=True)
class InferenceRow:
    mode: str
    median_ms: float
    min_ms: float
    fps: float
    speedup: float  # median over rounds of eager fp32's time / this row's, both measured in the same round
    speedup_low: float  # the smallest and the largest of those per-round ratios: their spread
    speedup_high: float
    max_abs_diff: float  # against eager fp32 outputs on the same input
    # The INT8 row: the median (and spread) over rounds of the fp32 onnxruntime row's time / this row's.
    versus_fp32_onnx: tuple[float, float, float] | None = None


ONNXRUNTIME_ROW = "onnxruntime fp32 (CPU)"
ONNXRUNTIME_INT8_ROW = "onnxruntime int8 (CPU)"
BASELINE = "eager fp32"


def _variants(device: torch.device) -> list[tuple[str, bool, bool, bool]]:
    """(name, deploy, channels_last, amp) of each timed variant."""
    variants = [
        (BASELINE, False, False, False),
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
    channels_last (and their AMP fp16 versions on CUDA), then ``onnxruntime`` (needs dilnas[deploy]). The rows
    are timed in ``repeats`` alternating rounds (``time_alternating``)."""
    torch.manual_seed(seed)
    eager = RegSeg(spec).to(device).eval()
    x = torch.randn(batch_size, spec.stem.in_channels, *input_size, device=device)
    with torch.inference_mode():
        reference = eager(x).float()
    forwards: dict[str, Callable[[], torch.Tensor]] = {}
    for name, deploy, channels_last, amp in _variants(device):
        model = deploy_model(eager, channels_last) if deploy else eager
        inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        autocast = torch.autocast(device.type, dtype=torch.float16) if amp else contextlib.nullcontext()

        def forward(model=model, inputs=inputs, autocast=autocast) -> torch.Tensor:
            with torch.inference_mode(), autocast:
                return model(inputs)

        forwards[name] = forward
    with contextlib.ExitStack() as stack:
        if onnxruntime:
            cpu = torch.device("cpu")
            deployed, images = deploy_model(eager).to(cpu), x.to(cpu)
            session = stack.enter_context(
                temporary_onnx_session(deployed, images, threads=torch.get_num_threads())
            )
            forwards[ONNXRUNTIME_ROW] = lambda: onnx_forward(session, images)
            int8 = stack.enter_context(
                temporary_int8_session(deployed, images, threads=torch.get_num_threads())
            )
            forwards[ONNXRUNTIME_INT8_ROW] = lambda: onnx_forward(int8, images)
        differences = {
            name: (forward().float().to(reference.device) - reference).abs().max().item()
            for name, forward in forwards.items()
        }
        # onnxruntime runs on the CPU: on a GPU machine its row is timed with the CPU clock.
        clocks = {ONNXRUNTIME_ROW: torch.device("cpu"), ONNXRUNTIME_INT8_ROW: torch.device("cpu")}
        timed = time_alternating(forwards, device, warmup, repeats, devices=clocks)
    rows = []
    for name in forwards:
        ratios = timed.ratios(BASELINE, name)
        median = timed.median_ms(name)
        versus = None
        if name == ONNXRUNTIME_INT8_ROW:
            onnx_ratios = timed.ratios(ONNXRUNTIME_ROW, name)
            versus = (statistics.median(onnx_ratios), min(onnx_ratios), max(onnx_ratios))
        rows.append(
            InferenceRow(
                mode=name,
                median_ms=median,
                min_ms=timed.min_ms(name),
                fps=1000.0 * batch_size / median,
                speedup=statistics.median(ratios),
                speedup_low=min(ratios),
                speedup_high=max(ratios),
                max_abs_diff=differences[name],
                versus_fp32_onnx=versus,
            )
        )
    return rows


def format_inference(rows: list[InferenceRow]) -> str:
    """The table, then the INT8 row's speed against the float onnxruntime row (when both were timed)."""
    table = format_table(
        ["mode", "median ms", "min ms", "img/s", "speedup", "spread", "max |diff|"],
        [
            [
                r.mode,
                f"{r.median_ms:.1f}",
                f"{r.min_ms:.1f}",
                f"{r.fps:.2f}",
                f"{r.speedup:.2f}x",
                f"{r.speedup_low:.2f}-{r.speedup_high:.2f}",
                f"{r.max_abs_diff:.1e}",
            ]
            for r in rows
        ],
    )
    notes = [
        f"{r.mode}: {r.versus_fp32_onnx[0]:.2f}x the speed of {ONNXRUNTIME_ROW} (per-round ratios "
        f"{r.versus_fp32_onnx[1]:.2f}-{r.versus_fp32_onnx[2]:.2f}); max |diff| is in logits, int8 rounds them"
        for r in rows
        if r.versus_fp32_onnx is not None
    ]
    return "\n".join([table, *notes])


def rows_as_dicts(rows: list[InferenceRow]) -> list[dict]:
    return [asdict(row) for row in rows]
