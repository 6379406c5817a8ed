"""The deriver: a fixed architecture from a search's probabilities, decided block by block under the
no-gap rule (a branch only takes rates that leave no gap given the rates already chosen before it).

Rules:
- ``argmax``: the most probable admissible rate;
- ``expected``: the admissible rate nearest to the probability-weighted rate (ties: the smaller);
- ``topk``: the largest rate among the ``k`` most probable admissible ones (favours field of view when
  the top candidates are close).
"""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dilnas import __version__
from dilnas.arch import ArchSpec
from dilnas.space import SearchSpace

RULES = ("argmax", "expected", "topk")


def choose_rate(
    rates: Sequence[int], probs: Sequence[float], admissible: Sequence[int], rule: str, k: int = 2
) -> int:
    allowed = [(p, r) for r, p in zip(rates, probs, strict=True) if r in admissible]
    if rule == "argmax":
        return max(allowed, key=lambda pr: (pr[0], -pr[1]))[1]
    if rule == "expected":
        expected = sum(p * r for r, p in zip(rates, probs, strict=True))
        return min((r for _, r in allowed), key=lambda r: (abs(r - expected), r))
    if rule == "topk":
        top = sorted(allowed, key=lambda pr: (-pr[0], pr[1]))[: max(1, k)]
        return max(r for _, r in top)
    raise ValueError(f"unknown derivation rule {rule!r}; allowed: {', '.join(RULES)}")


def derive_rates(
    space: SearchSpace, probs: Sequence[Sequence[float]], rule: str = "argmax", k: int = 2
) -> list[int]:
    """One rate per searchable branch, in the space's order."""
    if rule not in RULES:
        raise ValueError(f"unknown derivation rule {rule!r}; allowed: {', '.join(RULES)}")
    chosen: list[int] = [branch.candidates[0] for branch in space.branches]
    by_block: dict[int, list[int]] = {}
    for index, branch in enumerate(space.branches):
        by_block.setdefault(branch.block, []).append(index)
    field = space.base.stem_field()
    for block_index, block in enumerate(space.base.blocks):
        dilations = list(block.dilations)
        for index in by_block.get(block_index, []):
            branch = space.branches[index]
            admissible = [r for r in branch.candidates if not field.leaves_gap(r)]
            chosen[index] = choose_rate(branch.candidates, probs[index], admissible, rule, k)
            dilations[branch.branch] = chosen[index]
        field = field.through_dblock(block.stride, dilations)
    return chosen


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
