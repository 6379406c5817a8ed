"""The deriver against brute force: on random spaces and random probability tables, the dynamic programme
over blocks finds the best gapless assignment, enumerates and counts them, samples them uniformly and finds
every candidate no gapless network uses."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from types import SimpleNamespace

import pytest

from dilnas.spec.arch import ArchSpec
from dilnas.spec.derivation import branch_scores, derive_rates
from dilnas.spec.fov import ReceptiveField
from dilnas.spec.gapless import (
    best_gapless,
    count_gapless,
    gapless_assignments,
    sample_gapless,
    top_gapless,
    unreachable_candidates,
)
from dilnas.spec.options import DeriveRule
from dilnas.spec.space import load_space

TRUNK = [  # the tiny synthetic network up to output stride 16
    {"stride": 2, "in_channels": 16, "out_channels": 24, "group_width": 8, "dilations": [1]},
    {"stride": 2, "in_channels": 24, "out_channels": 48, "group_width": 8, "dilations": [1]},
    {"stride": 1, "in_channels": 48, "out_channels": 48, "group_width": 8, "dilations": [1]},
    {"stride": 2, "in_channels": 48, "out_channels": 64, "group_width": 8, "dilations": [1]},
]


def random_space(rng: random.Random) -> tuple[ArchSpec, list[SimpleNamespace]]:
    """A base architecture and searchable branches: 2-4 stride-16 blocks of 1-2 branches, each branch fixed
    or searchable. Rates are drawn up to a little above the bound at the largest reachable field, so that
    some combinations (and some candidates) leave gaps whatever the others choose."""
    blocks, branches = [dict(block) for block in TRUNK], []
    field = ReceptiveField().through(3, 2)
    for block in TRUNK:
        field = field.through_dblock(block["stride"], block["dilations"])
    for index in range(len(TRUNK), len(TRUNK) + rng.randint(2, 4)):
        dilations, largest = [], 1
        top = field.max_gapless_rate + (rng.random() < 0.25)
        for number in range(rng.choice([1, 2])):
            if rng.random() < 0.75:
                candidates = tuple(sorted(rng.sample(range(1, top + 1), rng.randint(1, min(4, top)))))
                branches.append(SimpleNamespace(block=index, branch=number, candidates=candidates))
                dilations.append(candidates[0])
                largest = max(largest, *candidates)
            else:
                dilations.append(rng.randint(1, top))
                largest = max(largest, dilations[-1])
        blocks.append(
            {"stride": 1, "in_channels": 64, "out_channels": 64, "group_width": 8, "dilations": dilations}
        )
        field = field.through_dblock(1, [largest])
    data = {
        "format": "dilnas.arch",
        "schema_version": 1,
        "name": "random",
        "num_classes": 3,
        "stem": {"in_channels": 3, "out_channels": 16, "kernel_size": 3, "stride": 2},
        "blocks": blocks,
        "decoder": {"type": "decoder26"},
    }
    return ArchSpec.from_dict(data, allow_gaps=True), branches


def brute_force(base: ArchSpec, branches: list[SimpleNamespace]) -> list[tuple[int, ...]]:
    """Every assignment whose architecture has no gap, by building it (ArchSpec.gaps, not the deriver)."""
    found = []
    for rates in itertools.product(*(b.candidates for b in branches)):
        blocks = [list(block.dilations) for block in base.blocks]
        for branch, rate in zip(branches, rates, strict=True):
            blocks[branch.block][branch.branch] = rate
        data = base.to_dict()
        for block, dilations in zip(data["blocks"], blocks, strict=True):
            block["dilations"] = dilations
        if not ArchSpec.from_dict(data, allow_gaps=True).gaps():
            found.append(rates)
    return found


def total(scores, branches, rates):
    parts = [
        scores[i][b.candidates.index(rate)] for i, (b, rate) in enumerate(zip(branches, rates, strict=True))
    ]
    return tuple(sum(part[j] for part in parts) for j in range(len(parts[0]))) if parts else ()


@pytest.mark.parametrize("seed", range(60))
def test_optimal_derivation_matches_brute_force_on_random_spaces(seed):
    rng = random.Random(seed)
    base, branches = random_space(rng)
    gapless = brute_force(base, branches)
    assert list(gapless_assignments(base, branches)) == gapless  # both in lexicographic order
    assert count_gapless(base, branches) == len(gapless)
    used = {(i, rate) for rates in gapless for i, rate in enumerate(rates)}
    expected_unreachable = [
        (i, r) for i, b in enumerate(branches) for r in b.candidates if (i, r) not in used
    ]
    assert unreachable_candidates(base, branches) == expected_unreachable
    for _ in range(5):
        probs = [[rng.random() ** 3 for _ in b.candidates] for b in branches]
        probs = [[p / sum(row) for p in row] for row in probs]
        for rule in DeriveRule:
            scores = [branch_scores(b.candidates, p, rule, k=2) for b, p in zip(branches, probs, strict=True)]
            chosen = best_gapless(base, branches, scores)
            if not gapless:
                assert chosen is None
                continue
            ranked = sorted(
                gapless,
                key=lambda rates: (total(scores, branches, rates), tuple(-r for r in rates)),
                reverse=True,
            )
            assert chosen == ranked[0], (rule, probs)
            for count in (2, 5, len(gapless) + 1):  # the k best, in order; all of them when k is larger
                assert top_gapless(base, branches, scores, count) == ranked[:count], (rule, count)


def test_optimal_derivation_beats_greedy_where_greedy_fails():
    # Greedy takes block 4's most probable rate (1) and then cannot give block 5 its 6 (bound 4): the joint
    # choice (2, 6) has the higher product of probabilities, 0.45 x 0.9 against 0.55 x 0.025.
    space = load_space("synthetic_tiny")
    probs = [[0.55, 0.45], [0.025, 0.025, 0.025, 0.025, 0.0, 0.9]]
    assert derive_rates(space, probs, "argmax") == [2, 6]
    probs[1] = [0.3, 0.1, 0.1, 0.1, 0.1, 0.3]
    assert derive_rates(space, probs, "argmax") == [1, 1]  # 0.55 x 0.3 > 0.45 x 0.3: ties keep smaller


def test_uniform_sample_of_gapless_architectures():
    space = load_space("synthetic_tiny")
    everything = list(gapless_assignments(space.base, space.branches))
    assert sample_gapless(space.base, space.branches, 50, seed=0) == everything  # more asked than exist
    drawn = sample_gapless(space.base, space.branches, 4, seed=3)
    assert len(set(drawn)) == 4 and set(drawn) <= set(everything)
    assert drawn == sample_gapless(space.base, space.branches, 4, seed=3)  # seeded
    # Uniform: each of the 10 is drawn about equally often as the first of a 1-sample.
    counts = Counter(sample_gapless(space.base, space.branches, 1, seed=s)[0] for s in range(3000))
    assert set(counts) == set(everything)
    chi2 = sum((count - 300) ** 2 / 300 for count in counts.values())
    assert chi2 < 27.9  # p = 0.001 for 9 degrees of freedom


def test_paper_space_counts_and_samples_without_enumeration():
    space = load_space("regseg_exp48")
    assert count_gapless(space.base, space.branches) > 10**12
    for rates in sample_gapless(space.base, space.branches, 3, seed=0):
        assert space.arch_with(rates).gaps() == []
