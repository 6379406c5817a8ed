"""How well one ordering of architectures agrees with another: Kendall's tau-b, Spearman's rho, the overlap of
the top k, and a bootstrap interval over a ground-truth table's seeds. Pure Python (a table has tens of rows).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of paired values (ties in either count as neither concordant nor discordant, and shrink
    the denominator); nan with fewer than two pairs or when one side is constant."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs pairs, got {len(x)} and {len(y)} values")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (average ranks for ties); nan when undefined."""
    if len(x) != len(y):
        raise ValueError(f"spearman_rho needs pairs, got {len(x)} and {len(y)} values")
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    try:
        return statistics.correlation(rx, ry)
    except statistics.StatisticsError:  # a constant side
        return math.nan


def top_overlap(score: Mapping[str, float], truth: Mapping[str, float], k: int = 5) -> float:
    """The share of the ``k`` best architectures by ``truth`` that are also among the ``k`` best by ``score``
    (ties broken by name, so the result does not depend on dict order)."""
    k = min(k, len(truth))
    if k == 0:
        return math.nan

    def best(values: Mapping[str, float]) -> set[str]:
        return set(sorted(truth, key=lambda arch: (-values[arch], arch))[:k])

    return len(best(score) & best(truth)) / k


@dataclass(frozen=True)
class Agreement:
    """The agreement of a score with a table's means, with a bootstrap interval over the table's seeds."""

    kendall: float
    spearman: float
    top_overlap: float  # of the ``top`` best (``top_overlap``)
    kendall_interval: tuple[float, float]
    spearman_interval: tuple[float, float]


def agreement(
    score: Mapping[str, float],
    mious: Mapping[str, Sequence[float]],
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.9,
    top: int = 5,
) -> Agreement:
    """``score`` (higher is better) against the mean mIoU of each architecture in ``mious`` (every seed's
    value). The interval: each architecture's mean recomputed from its seeds drawn with replacement,
    ``samples`` times, and the central ``level`` share of the statistics."""
    archs = sorted(mious)
    scores = [score[arch] for arch in archs]
    means = [statistics.fmean(mious[arch]) for arch in archs]
    rng = random.Random(seed)
    taus, rhos = [], []
    for _ in range(samples):
        drawn = [statistics.fmean(rng.choices(mious[arch], k=len(mious[arch]))) for arch in archs]
        taus.append(kendall_tau(scores, drawn))
        rhos.append(spearman_rho(scores, drawn))
    return Agreement(
        kendall_tau(scores, means),
        spearman_rho(scores, means),
        top_overlap(score, dict(zip(archs, means, strict=True)), top),
        interval(taus, level),
        interval(rhos, level),
    )


def interval(values: Sequence[float], level: float = 0.9) -> tuple[float, float]:
    """The central ``level`` share of ``values`` (nan ones left out): (lower, upper) percentiles."""
    finite = sorted(value for value in values if not math.isnan(value))
    if not finite:
        return math.nan, math.nan
    tail = (1 - level) / 2

    def at(share: float) -> float:
        position = share * (len(finite) - 1)
        low = math.floor(position)
        high = min(low + 1, len(finite) - 1)
        return finite[low] + (finite[high] - finite[low]) * (position - low)

    return at(tail), at(1 - tail)


def seed_ceiling(
    miou_of: Callable[[str, int], float | None], archs: Sequence[str], first: int = 0, second: int = 1
) -> tuple[float, int]:
    """Kendall's tau between the ranking by retraining seed ``first`` and by seed ``second``, over the
    architectures that have both (and how many): the agreement the table's own noise allows, which no
    search's score can be expected to beat."""
    pairs = [(miou_of(arch, first), miou_of(arch, second)) for arch in archs]
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    return kendall_tau([a for a, _ in both], [b for _, b in both]), len(both)
