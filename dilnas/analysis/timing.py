"""Wall-clock timing of a callable: warm-up, then the median of repeated runs.

On CUDA the runs are timed with CUDA events (the GPU's own clock) after a synchronize; on CPU with
``time.perf_counter``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


def time_callable(
    fn: Callable[[], object], device: torch.device, warmup: int = 2, repeats: int = 5
) -> Timing:
    for _ in range(warmup):
        fn()
    samples = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            start_s = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start_s) * 1000.0)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats)
