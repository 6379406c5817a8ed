"""The no-gap arithmetic: RegSeg's published numbers, and the rule against an empirical receptive field."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from dilnas.spec.arch import ArchSpec
from dilnas.spec.fov import ReceptiveField, chain_field, first_gap
from tests.helpers.networks import SCHEDULES, with_schedule


def test_exp48_bounds_and_field_of_view(exp48):
    bounds = exp48.bounds()
    first_dilated_run = exp48.output_strides().index(16) + 1  # first stride-1 block at stride 16
    assert exp48.block_fields()[first_dilated_run][0] == ReceptiveField(63, 16)
    assert bounds[first_dilated_run] == 3
    assert bounds[first_dilated_run + 1] == 5  # the (1, 2) block
    assert bounds[-1] == 209
    assert exp48.field_of_view == 3807
    assert exp48.gaps() == []


@pytest.mark.parametrize(
    "name, field_of_view",
    [("exp43", 3743), ("exp46", 3295), ("exp47", 4127), ("exp52", 2207), ("exp30", 3263), ("exp48", 3807)],
)
def test_paper_schedules_field_of_view(exp48_dict, name, field_of_view):
    spec = ArchSpec.from_dict(with_schedule(exp48_dict, SCHEDULES[name]), allow_gaps=True)
    assert spec.field_of_view == field_of_view


def test_exp30_predates_the_rule(exp48_dict):
    # exp30 starts its stride-16 run with rate 4 where the bound is 3: a 1-pixel gap (Gao, arXiv 2111.09957).
    spec = ArchSpec.from_dict(with_schedule(exp48_dict, SCHEDULES["exp30"]), allow_gaps=True)
    first = spec.gaps()[0]
    assert (first.rate, first.bound) == (4, 3)
    assert spec.block_fields()[first.block][0].gap_width(4) == 1


def test_receptive_field_recursion():
    field = chain_field([(3, 2, 1), (3, 2, 1), (3, 1, 1)])
    assert field == ReceptiveField(3 + 2 * 2 + 2 * 4, 4)
    assert field.max_gapless_rate == 15 // 4
    assert not field.leaves_gap(3) and field.leaves_gap(4)
    assert first_gap([(3, 2, 1), (3, 1, 3)]) == 1
    assert first_gap([(3, 2, 1), (3, 1, 1)]) is None


def _random_chain(rng: random.Random, break_last: bool) -> list[tuple[int, int, int]]:
    """3x3 layers with random strides and rates that obey r*s <= k, the last one breaking it if asked."""
    layers, field = [], ReceptiveField()
    depth = rng.randint(3, 6)
    for index in range(depth):
        stride = rng.choice([1, 2]) if field.stride < 8 else 1
        bound = field.max_gapless_rate
        last = index == depth - 1
        rate = bound + rng.randint(1, 3) if last and break_last else rng.randint(1, max(1, bound))
        layers.append((3, stride, rate))
        field = field.through(3, stride, rate)
    return layers


def _empirical_support(layers: list[tuple[int, int, int]], size: int) -> torch.Tensor:
    """Input pixels (along the centre row) with a non-zero gradient of the centre output pixel."""
    convs = []
    for kernel_size, stride, rate in layers:
        conv = nn.Conv2d(1, 1, kernel_size, stride=stride, padding=rate, dilation=rate, bias=False)
        nn.init.constant_(conv.weight, 1.0)  # positive weights: no cancellation between paths
        convs.append(conv)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = nn.Sequential(*convs).double()(x)
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    row = x.grad[0, 0].abs().sum(dim=0)  # collapse rows: the support is separable
    return (row > 0).nonzero().flatten()


@pytest.mark.parametrize("seed", range(12))
def test_gapless_chains_match_the_empirical_receptive_field(seed):
    layers = _random_chain(random.Random(seed), break_last=False)
    field_of_view = chain_field(layers).size
    support = _empirical_support(layers, size=2 * field_of_view + 64)
    assert first_gap(layers) is None
    assert support.numel() == field_of_view  # no zero inside the span ...
    assert int(support[-1] - support[0]) + 1 == field_of_view  # ... and the span is the computed field


@pytest.mark.parametrize("seed", range(12))
def test_breaking_the_rule_in_the_last_layer_leaves_a_hole(seed):
    layers = _random_chain(random.Random(seed), break_last=True)
    before_last = chain_field(layers[:-1])
    rate = layers[-1][2]
    support = _empirical_support(layers, size=2 * chain_field(layers).size + 64)
    span = int(support[-1] - support[0]) + 1
    assert first_gap(layers) == len(layers) - 1
    assert span == chain_field(layers).size
    assert span - support.numel() == 2 * before_last.gap_width(rate)  # one hole between each pair of taps
