"""Wall-clock timing of a callable: warm-up, then the median of repeated runs.

On CUDA the runs are timed with CUDA events (the GPU's own clock) after a synchronize; on CPU with
``time.perf_counter``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
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


@dataclass(frozen=True)
class Alternation:
    """Timings of several callables measured in rotating order, round after round: a change of the machine's
    load between rows then shows in every row alike instead of as a ratio."""

    samples: dict[str, list[float]]  # name -> ms per round
    orders: list[list[str]]  # the order of each round

    def median_ms(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def min_ms(self, name: str) -> float:
        return min(self.samples[name])

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        """Per round, ``numerator``'s time over ``denominator``'s (the two measured in the same round)."""
        return [a / b for a, b in zip(self.samples[numerator], self.samples[denominator], strict=True)]


def time_alternating(
    fns: Mapping[str, Callable[[], object]],
    device: torch.device,
    warmup: int = 2,
    rounds: int = 5,
    devices: Mapping[str, torch.device] | None = None,
) -> Alternation:
    """Warm every callable up, then ``rounds`` rounds timing each once; round r starts at the r-th callable
    (rotation), so no row is always measured first or last. ``devices`` names the clock of a callable that
    runs elsewhere than ``device`` (onnxruntime on the CPU beside CUDA rows)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    orders = []
    for index in range(rounds):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        orders.append(order)
        for name in order:
            clock = (devices or {}).get(name, device)
            samples[name].append(time_callable(fns[name], clock, warmup=0, repeats=1).median_ms)
    return Alternation(samples, orders)


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes) where the system reports one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
