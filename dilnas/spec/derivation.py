"""The deriver: a fixed architecture from a search's probabilities, decided jointly over all blocks under the
no-gap rule (dynamic programming over blocks and field of view, ``best_gapless``).

Rules, each the gapless assignment with the best total over the searchable branches:
- ``argmax``: the highest sum of log-probabilities (the most probable gapless network);
- ``expected``: the smallest total distance to each branch's probability-weighted rate (ties: smaller rates);
- ``topk``: as many branches as possible on one of their ``k`` most probable rates, then the largest rates
  (favours field of view when the top candidates are close).

``shortlist`` adds the next most probable gapless architectures to a rule's pick: the candidates that
``dilnas-search`` scores on the held-out split with the supernet's weights (``search.select_top``) before it
keeps the best. Probabilities alone rank architectures poorly; the held-out score of each inherited network
ranks them much as retraining does (experiments/ground_truth/README.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from dilnas.spec.arch import ArchSpec
from dilnas.spec.gapless import Score, best_gapless, top_gapless
from dilnas.spec.options import DeriveRule
from dilnas.spec.space import SearchSpace


def rule_name(rule: DeriveRule, k: int = 2) -> str:
    """The rule as recorded in ``arch.json`` and in file names: ``argmax``, ``expected``, ``topk2``."""
    return f"topk{k}" if rule is DeriveRule.topk else rule.value


def branch_scores(rates: Sequence[int], probs: Sequence[float], rule: DeriveRule, k: int = 2) -> list[Score]:
    """What each candidate of one branch is worth under ``rule`` (higher is better, ties: the smaller rate).

    - ``argmax``: its log-probability;
    - ``expected``: minus its distance to the probability-weighted rate;
    - ``topk``: first whether it is among the ``k`` most probable, then its rate, then its log-probability.
    """
    rule = DeriveRule(rule)  # a plain string such as "argmax" is checked here
    if rule is DeriveRule.argmax:
        return [(math.log(max(p, 1e-300)), -r) for r, p in zip(rates, probs, strict=True)]
    if rule is DeriveRule.expected:
        expected = sum(p * r for r, p in zip(rates, probs, strict=True))
        return [(-abs(r - expected), -r) for r in rates]
    ranked = sorted(zip(probs, rates, strict=True), key=lambda pr: (-pr[0], pr[1]))
    top = {r for _, r in ranked[: max(1, k)]}
    return [(float(r in top), r, math.log(max(p, 1e-300))) for r, p in zip(rates, probs, strict=True)]


def derive_rates(
    space: SearchSpace, probs: Sequence[Sequence[float]], rule: DeriveRule = DeriveRule.argmax, k: int = 2
) -> list[int]:
    """One rate per searchable branch, in the space's order: the jointly best gapless assignment."""
    scores = [branch_scores(b.candidates, p, rule, k) for b, p in zip(space.branches, probs, strict=True)]
    rates = best_gapless(space.base, space.branches, scores)
    if rates is None:  # a loaded space always has one (unreachable candidates are refused at load)
        raise ValueError(f"search space {space.name} has no gapless architecture")
    return list(rates)


def shortlist(
    space: SearchSpace, probs: Sequence[Sequence[float]], pick: Sequence[int], count: int
) -> list[list[int]]:
    """``pick`` then the most probable gapless architectures after it (by the sum of log-probabilities), ``count``
    in all (fewer when the space holds fewer)."""
    scores = [
        branch_scores(b.candidates, p, DeriveRule.argmax) for b, p in zip(space.branches, probs, strict=True)
    ]
    ranked = top_gapless(space.base, space.branches, scores, count)
    others = [list(rates) for rates in ranked if list(rates) != list(pick)]
    return [list(pick), *others][: max(1, count)]


def derive_arch(
    space: SearchSpace,
    probs: Sequence[Sequence[float]],
    rule: DeriveRule = DeriveRule.argmax,
    k: int = 2,
    name: str | None = None,
    provenance: dict[str, Any] | None = None,
    rates: Sequence[int] | None = None,
) -> ArchSpec:
    """The derived architecture with its ``search`` and ``provenance`` sections.

    ``rates``: the architecture when the caller decided it otherwise (the held-out selection's best, random
    search's pick); by default the rule's pick. ``provenance`` is recorded as given: the writer of the file
    adds the version, commit and time (``dilnas.utils.provenance``)."""
    rule = DeriveRule(rule)
    rates = list(rates) if rates is not None else derive_rates(space, probs, rule, k)
    arch = space.arch_with(rates, name=name or f"{space.name}_derived")
    search: dict[str, Any] = {
        "space": space.name,
        "space_digest": space.digest,
        "rule": rule_name(rule, k),
        "branches": {
            branch.key: {
                "rates": list(branch.candidates),
                "probs": [float(p) for p in branch_probs],
                "choice": rate,
            }
            for branch, branch_probs, rate in zip(space.branches, probs, rates, strict=True)
        },
    }
    return dataclasses.replace(arch, search=search, provenance=dict(provenance or {}))
