"""Which weights go where: the supernet-to-derived weight mapping and the check that a state dict fits a
network. Pure functions of state dicts; every loader and exporter goes through them.

A supernet's state dict is a RegSeg's, except that each searchable branch keeps its kernel(s) as
``body.blocks.<b>.conv2.convs.<j>.weights.<k>`` (one shared kernel, k = 0, or one per candidate) where the
derived network has ``...conv2.convs.<j>.weight``, and that it adds the logits ``alphas.<i>`` (one vector per
searchable branch, in the space's order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from dilnas.utils.errors import UserError

LOGITS_PREFIX = "alphas."
_MIXED_KERNEL = re.compile(r"^(body\.blocks\.(\d+)\.conv2\.convs\.(\d+)\.)weights\.(\d+)$")
_SHOWN = 8


def logits_key(index: int) -> str:
    """The state-dict key of the ``index``-th searchable branch's logits."""
    return f"{LOGITS_PREFIX}{index}"


def is_supernet_state(state: Mapping[str, torch.Tensor]) -> bool:
    return any(key.startswith(LOGITS_PREFIX) for key in state)


def arch_logits(state: Mapping[str, torch.Tensor], count: int) -> list[torch.Tensor | None]:
    """The logits of ``count`` searchable branches (None where the state dict has none)."""
    return [state.get(logits_key(index)) for index in range(count)]


def derived_state_dict(
    state: Mapping[str, torch.Tensor], chosen: Mapping[tuple[int, int], int]
) -> dict[str, torch.Tensor]:
    """A supernet's weights renamed for the derived network, the logits dropped.

    Each searchable branch takes its shared kernel or, with one kernel per candidate, the kernel of the
    chosen candidate: ``chosen[(block, branch)]`` is its index among the branch's candidates. A branch
    missing from ``chosen`` raises KeyError (only a per-candidate supernet needs it).
    """
    derived = {}
    for key, tensor in state.items():
        if key.startswith(LOGITS_PREFIX):
            continue
        match = _MIXED_KERNEL.match(key)
        if match is None:
            derived[key] = tensor
            continue
        prefix, block, branch, index = (
            match.group(1),
            int(match.group(2)),
            int(match.group(3)),
            int(match.group(4)),
        )
        if f"{prefix}weights.1" in state and chosen[(block, branch)] != index:
            continue  # one kernel per candidate: only the chosen one is inherited
        derived[prefix + "weight"] = tensor
    return derived


class CheckpointLayoutError(UserError):
    """A state dict whose keys or shapes do not match the architecture; lists what is wrong."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[str],
        target: str = "the architecture",
    ):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", mismatched),
        ):
            if items:
                more = f", ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}")
        super().__init__(f"{source}: state dict does not fit {target}: " + "; ".join(parts))


def check_fits(
    expected: Mapping[str, tuple[int, ...]],
    state: Mapping[str, torch.Tensor],
    source: str,
    target: str = "the architecture",
) -> None:
    """Every key of ``expected`` (key -> shape) present in ``state`` with that shape, and nothing else;
    CheckpointLayoutError otherwise (a one-line user error listing the differences)."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} (expected {shape})"
        for key, shape in expected.items()
        if key in state and tuple(state[key].shape) != tuple(shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointLayoutError(source, missing, unexpected, mismatched, target)


def shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state.items()}
