"""Forward-pass benchmark of a fixed RegSeg: eager fp32 against deploy mode, side by side in one run."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from dilnas.analysis.timing import time_callable
from dilnas.models.deploy import deploy_model
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
) -> list[InferenceRow]:
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

        difference = (forward().float() - reference).abs().max().item()
        timing = time_callable(forward, device, warmup, repeats)
        baseline = rows[0].median_ms if rows else timing.median_ms
        rows.append(
            InferenceRow(
                mode=name,
                median_ms=timing.median_ms,
                min_ms=timing.min_ms,
                fps=1000.0 * batch_size / timing.median_ms,
                speedup=baseline / timing.median_ms,
                max_abs_diff=difference,
            )
        )
    return rows


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
