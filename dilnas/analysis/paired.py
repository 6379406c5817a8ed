"""Paired comparisons of two search methods over the same seeds: the mean difference of their regrets, a
bootstrap interval over the pairs, and a one-sided sign-flip permutation p-value. Pure Python (tens of pairs).

The plan that uses them is written in ``experiments/ground_truth/README.md`` ("Plan: the pre-registered paired
comparison"): for each seed, ``other - baseline`` regret (positive: the baseline picked better), the mean over
the pairs, the central 90% of the means of 10,000 resamples of the pairs, and the share of the 2**n sign
patterns (exact up to ``EXACT_UP_TO`` pairs, else 100,000 random ones) whose mean is at least the observed one.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dilnas.analysis.rank_stats import interval

EXACT_UP_TO = 16  # pairs: 2**16 sign patterns enumerated


@dataclass(frozen=True)
class PairedResult:
    """``other - baseline`` over the seeds both have."""

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float
    interval: tuple[float, float]  # bootstrap, over the pairs
    p_value: float  # one-sided: the probability of a mean at least this large if the sign were a coin
    exact: bool  # every sign pattern enumerated


def paired_differences(
    baseline: Mapping[int, float], other: Mapping[int, float]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(the seeds both hold, sorted; ``other - baseline`` at each)."""
    seeds = tuple(sorted(set(baseline) & set(other)))
    return seeds, tuple(other[seed] - baseline[seed] for seed in seeds)


def bootstrap_interval(
    differences: Sequence[float], samples: int = 10_000, level: float = 0.9, seed: int = 0
) -> tuple[float, float]:
    """The central ``level`` share of the means of ``samples`` resamples (with replacement) of the pairs."""
    if not differences:
        return math.nan, math.nan
    rng = random.Random(seed)
    means = [statistics.fmean(rng.choices(differences, k=len(differences))) for _ in range(samples)]
    return interval(means, level)


def sign_flip_p(differences: Sequence[float], samples: int = 100_000, seed: int = 0) -> tuple[float, bool]:
    """(one-sided p-value, exact?): the share of sign patterns of ``differences`` whose sum is at least the
    observed sum (the observed pattern included), enumerated up to ``EXACT_UP_TO`` pairs, else sampled."""
    if not differences:
        return math.nan, True
    observed = math.fsum(differences)
    tolerance = 1e-9 * max(1.0, math.fsum(abs(d) for d in differences))
    magnitudes = [abs(d) for d in differences]
    if len(differences) <= EXACT_UP_TO:
        patterns = itertools.product((1, -1), repeat=len(differences))
        hits = total = 0
        for signs in patterns:
            total += 1
            hits += math.fsum(s * m for s, m in zip(signs, magnitudes, strict=True)) >= observed - tolerance
        return hits / total, True
    rng = random.Random(seed)
    hits = sum(
        math.fsum(m if rng.random() < 0.5 else -m for m in magnitudes) >= observed - tolerance
        for _ in range(samples)
    )
    return (hits + 1) / (samples + 1), False  # the observed pattern counts once


def compare_paired(
    baseline: Mapping[int, float],
    other: Mapping[int, float],
    bootstrap: int = 10_000,
    flips: int = 100_000,
    seed: int = 0,
) -> PairedResult:
    """``other - baseline`` per seed (a regret each: positive means the baseline did better), summarised."""
    seeds, differences = paired_differences(baseline, other)
    p_value, exact = sign_flip_p(differences, flips, seed)
    return PairedResult(
        seeds,
        differences,
        statistics.fmean(differences) if differences else math.nan,
        bootstrap_interval(differences, bootstrap, seed=seed),
        p_value,
        exact,
    )
