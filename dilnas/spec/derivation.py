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
import datetime
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dilnas import __version__
from dilnas.spec.arch import ArchSpec
from dilnas.spec.gapless import Score, best_gapless, top_gapless
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


def shortlist(
    space: SearchSpace, probs: Sequence[Sequence[float]], pick: Sequence[int], count: int
) -> list[list[int]]:
    """``pick`` then the most probable gapless architectures after it (by the sum of log-probabilities), ``count``
    in all (fewer when the space holds fewer)."""
    scores = [branch_scores(b.candidates, p, "argmax") for b, p in zip(space.branches, probs, strict=True)]
    ranked = top_gapless(space.base, space.branches, scores, count)
    others = [list(rates) for rates in ranked if list(rates) != list(pick)]
    return [list(pick), *others][: max(1, count)]


def selected(selection: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The best-scored entry of a scored shortlist (``{"rates": ..., "miou": ...}``); the earlier on ties."""
    best = max(range(len(selection)), key=lambda i: (selection[i]["miou"], -i))
    return selection[best]


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
    selection: Sequence[dict[str, Any]] | None = None,
) -> ArchSpec:
    """The derived architecture with its ``search`` and ``provenance`` sections.

    ``selection``: the shortlist as scored on held-out data (``{"rates": [...], "miou": ...}`` each, the rule's
    pick first); the best score (the earlier on ties) is the architecture, and the list goes into ``search``."""
    rates = list(selected(selection)["rates"]) if selection else derive_rates(space, probs, rule, k)
    arch = space.arch_with(rates, name=name or f"{space.name}_derived")
    search: dict[str, Any] = {
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
    if selection:
        search["selection"] = [{"rates": list(c["rates"]), "miou": float(c["miou"])} for c in selection]
    stamp = {
        "dilnas_version": __version__,
        "git_commit": git_commit(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **(provenance or {}),
    }
    return dataclasses.replace(arch, search=search, provenance=stamp)
