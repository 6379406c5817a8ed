"""The pre-registered comparison's statistics, against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from dilnas.analysis.paired import bootstrap_interval, compare_paired, paired_differences, sign_flip_p


def test_differences_pair_the_seeds_both_methods_ran():
    seeds, differences = paired_differences({100: 0.5, 101: 1.0, 102: 0.0}, {101: 3.0, 100: 0.5, 103: 9.0})
    assert seeds == (100, 101) and differences == (0.0, 2.0)


def test_sign_flip_p_enumerates_every_pattern():
    # The observed (1, 2, -1) sums to 2; of the 8 sign patterns of the magnitudes (1, 2, 1),
    # three sum to at least 2: (1,2,1)=4, (1,2,-1)=2 and (-1,2,1)=2.
    p_value, exact = sign_flip_p([1.0, 2.0, -1.0])
    assert exact and p_value == pytest.approx(3 / 8)
    assert sign_flip_p([1.0, 1.0, 1.0]) == (pytest.approx(1 / 8), True)  # only the observed pattern
    assert sign_flip_p([-1.0, -1.0]) == (pytest.approx(1.0), True)  # every pattern reaches -2
    assert math.isnan(sign_flip_p([])[0])


def test_sign_flip_p_samples_beyond_the_exact_limit():
    differences = [1.0] * 20  # exact: 1 / 2**20
    p_value, exact = sign_flip_p(differences, samples=2000, seed=1)
    assert not exact and p_value == pytest.approx(1 / 2001)  # no random pattern reaches the observed sum


def test_bootstrap_interval_of_constant_differences_is_that_constant():
    assert bootstrap_interval([0.7] * 5, samples=200) == (pytest.approx(0.7), pytest.approx(0.7))
    low, high = bootstrap_interval([0.0, 1.0, 2.0, 3.0], samples=5000, seed=3)
    assert 0.0 <= low < 1.5 < high <= 3.0


def test_compare_paired_summarises_other_minus_baseline():
    result = compare_paired({1: 0.0, 2: 1.0, 3: 0.5}, {1: 1.0, 2: 3.0, 3: -0.5}, bootstrap=500)
    assert result.seeds == (1, 2, 3) and result.differences == (1.0, 2.0, -1.0)
    assert result.mean == pytest.approx(2 / 3) and result.p_value == pytest.approx(3 / 8) and result.exact
    assert result.interval[0] <= result.mean <= result.interval[1]
