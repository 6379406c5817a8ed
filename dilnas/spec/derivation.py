"""The deriver: a fixed architecture from a search's probabilities, decided jointly over all blocks under the
no-gap rule (dynamic programming over blocks and field of view, ``best_gapless``).

Rules, each the gapless assignment with the best total over the searchable branches:
- ``argmax``: the highest sum of log-probabilities (the most probable gapless network);
- ``expected``: the smallest total distance to each branch's probability-weighted rate (ties: smaller rates);
- ``topk``: as many branches as possible on one of their ``k`` most probable rates, then the largest rates
  (favours field of view when the top candidates are close).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dilnas import __version__
from dilnas.spec.arch import ArchSpec
from dilnas.spec.gapless import Score, best_gapless
from dilnas.spec.space import SearchSpace

RULES = ("argmax", "expected", "topk")


def branch_scores(rates: Sequence[int], probs: Sequence[float], rule: str, k: int = 2) -> list[Score]:
    """What each candidate of one branch is worth under ``rule`` (higher is better, ties: the smaller rate).

    - ``argmax``: its log-probability;
    - ``expected``: minus its distance to the probability-weighted rate;
    - ``topk``: first whether it is among the ``k`` most probable, then its rate, then its log-probability.
    """
    if rule == "argmax":
        return [(math.log(max(p, 1e-300)), -r) for r, p in zip(rates, probs, strict=True)]
    if rule == "expected":
        expected = sum(p * r for r, p in zip(rates, probs, strict=True))
        return [(-abs(r - expected), -r) for r in rates]
    if rule == "topk":
        ranked = sorted(zip(probs, rates, strict=True), key=lambda pr: (-pr[0], pr[1]))
        top = {r for _, r in ranked[: max(1, k)]}
        return [(float(r in top), r, math.log(max(p, 1e-300))) for r, p in zip(rates, probs, strict=True)]
    raise ValueError(f"unknown derivation rule {rule!r}; allowed: {', '.join(RULES)}")


def derive_rates(
    space: SearchSpace, probs: Sequence[Sequence[float]], rule: str = "argmax", k: int = 2
) -> list[int]:
    """One rate per searchable branch, in the space's order: the jointly best gapless assignment."""
    if rule not in RULES:
        raise ValueError(f"unknown derivation rule {rule!r}; allowed: {', '.join(RULES)}")
    scores = [branch_scores(b.candidates, p, rule, k) for b, p in zip(space.branches, probs, strict=True)]
    rates = best_gapless(space.base, space.branches, scores)
    if rates is None:  # a loaded space always has one (unreachable candidates are refused at load)
        raise ValueError(f"search space {space.name} has no gapless architecture")
    return list(rates)


def git_commit() -> str | None:
    """The commit of the dilnas checkout, when it is one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def derive_arch(
    space: SearchSpace,
    probs: Sequence[Sequence[float]],
    rule: str = "argmax",
    k: int = 2,
    name: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> ArchSpec:
    """The derived architecture with its ``search`` and ``provenance`` sections."""
    rates = derive_rates(space, probs, rule, k)
    arch = space.arch_with(rates, name=name or f"{space.name}_derived")
    search = {
        "space": space.name,
        "space_digest": space.digest,
        "rule": rule if rule != "topk" else f"topk{k}",
        "branches": {
            branch.key: {
                "rates": list(branch.candidates),
                "probs": [float(p) for p in branch_probs],
                "choice": rate,
            }
            for branch, branch_probs, rate in zip(space.branches, probs, rates, strict=True)
        },
    }
    stamp = {
        "dilnas_version": __version__,
        "git_commit": git_commit(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(provenance or {}),
    }
    return dataclasses.replace(arch, search=search, provenance=stamp)
