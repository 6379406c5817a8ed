"""Ranking statistics against hand-computed small cases: Kendall tau-b, Spearman rho, top-k overlap, the
bootstrap interval over seeds and the seed ceiling."""

from __future__ import annotations

import math

import pytest

from dilnas.analysis.rank_stats import (
    agreement,
    interval,
    kendall_tau,
    ranks,
    seed_ceiling,
    spearman_rho,
    top_overlap,
)


def test_kendall_tau_by_hand():
    # x = 1,2,3,4 against y = 1,3,2,4: of the 6 pairs only (2,3) is discordant -> (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    # tau-b with a tie in y: pairs (12)+ (13)+ (14)+ (23)tie_y (24)+ (34)+ -> C=5, D=0, ties_y=1:
    # 5 / sqrt((5+0+0) * (5+0+1)).
    assert kendall_tau([1, 2, 3, 4], [1, 2, 2, 4]) == pytest.approx(5 / math.sqrt(5 * 6))
    assert math.isnan(kendall_tau([1, 2], [5, 5])) and math.isnan(kendall_tau([1], [1]))
    with pytest.raises(ValueError, match="pairs"):
        kendall_tau([1, 2], [1])


def test_spearman_by_hand():
    assert ranks([10, 30, 20, 20]) == [1.0, 4.0, 2.5, 2.5]
    # ranks 1,2,3,4 vs 1,3,2,4: d^2 = 0+1+1+0 = 2 -> 1 - 6*2/(4*15) = 0.8.
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman_rho([1, 2, 3], [7, 7, 7]))


def test_top_overlap_by_hand():
    truth = {"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0}
    score = {"a": 1.0, "b": 0.0, "c": 3.0, "d": 2.0}
    assert top_overlap(score, truth, k=2) == 0.0  # c, d against a, b
    assert top_overlap(score, truth, k=3) == pytest.approx(2 / 3)  # {c, d, a} against {a, b, c}
    assert top_overlap(score, truth, k=10) == 1.0  # k larger than the table: everything


def test_agreement_and_its_bootstrap_interval():
    mious = {"a": [90.0, 92.0], "b": [80.0, 81.0], "c": [70.0, 69.0], "d": [60.0, 61.0]}
    perfect = agreement({"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}, mious, samples=200, seed=1)
    # The means are far apart: every resample keeps the order, so the interval is a point.
    assert perfect.kendall == 1.0 and perfect.spearman == pytest.approx(1.0) and perfect.top_overlap == 1.0
    assert perfect.kendall_interval == (1.0, 1.0)
    close = {"a": [70.0, 60.0], "b": [66.0, 64.0], "c": [30.0, 31.0]}  # a and b swap under resampling
    found = agreement({"a": 3.0, "b": 2.0, "c": 1.0}, close, samples=400, seed=0)
    # The means tie a and b (65.0): C = 2 (a-c, b-c), one tie in the truth -> 2 / sqrt(2 * 3).
    assert found.kendall == pytest.approx(2 / math.sqrt(6))
    low, high = found.kendall_interval
    assert low < 1.0 <= high
    assert agreement({"a": 3.0, "b": 2.0, "c": 1.0}, close, samples=400, seed=0) == found  # seeded


def test_interval_is_the_central_share():
    values = list(range(101))  # 0..100
    assert interval(values, 0.9) == pytest.approx((5.0, 95.0))
    assert interval([math.nan, 1.0, 3.0], 1.0) == (1.0, 3.0)


def test_seed_ceiling_uses_architectures_with_both_seeds():
    table = {"a": {0: 90.0, 1: 88.0}, "b": {0: 80.0, 1: 89.0}, "c": {0: 70.0, 1: 60.0}, "d": {0: 50.0}}
    tau, pairs = seed_ceiling(lambda arch, seed: table[arch].get(seed), sorted(table))
    # seed 0: a > b > c; seed 1: b > a > c -> one discordant pair of three.
    assert pairs == 3 and tau == pytest.approx(1 / 3)
