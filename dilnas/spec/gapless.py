"""Which combinations of searchable rates leave no gap: enumeration, the jointly best one, reachability.

A search space fixes every rate but its searchable branches'. Whether a rate leaves a gap depends only on the
receptive field of the block's input, which the earlier choices decide; so a walk over blocks whose state is
that receptive field (its size: the stride of a block's input is the same in every architecture) decides
everything exactly: dynamic programming instead of a greedy block-by-block choice that a later fixed or
chosen rate can break. Pure Python: no torch.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Protocol

from dilnas.spec.arch import ArchSpec
from dilnas.spec.fov import ReceptiveField
from dilnas.utils.errors import UserError

Score = tuple[float, ...]  # compared lexicographically; a branch's scores are summed element by element


class Branch(Protocol):
    """What these functions read of a searchable branch (``dilnas.spec.space.SearchableBranch``)."""

    @property
    def block(self) -> int: ...
    @property
    def branch(self) -> int: ...
    @property
    def candidates(self) -> tuple[int, ...]: ...


def _by_block(branches: Sequence[Branch]) -> dict[int, list[int]]:
    by_block: dict[int, list[int]] = {}
    for index, branch in enumerate(branches):
        by_block.setdefault(branch.block, []).append(index)
    return by_block


def _block_steps(
    base: ArchSpec, branches: Sequence[Branch], field: ReceptiveField, block_index: int
) -> Iterator[tuple[tuple[int, ...], ReceptiveField]]:
    """(rates of the block's searchable branches, field after the block) for every gapless combination."""
    block = base.blocks[block_index]
    searchable = _by_block(branches).get(block_index, [])
    for combination in itertools.product(*(branches[i].candidates for i in searchable)):
        dilations = list(block.dilations)
        for index, rate in zip(searchable, combination, strict=True):
            dilations[branches[index].branch] = rate
        if not any(field.leaves_gap(rate) for rate in dilations):
            yield combination, field.through_dblock(block.stride, dilations)


def _stride_before(base: ArchSpec, block_index: int) -> int:
    return ([base.stem.stride, *base.output_strides()])[block_index]


def gapless_assignments(base: ArchSpec, branches: Sequence[Branch]) -> Iterator[tuple[int, ...]]:
    """Every gapless assignment (one rate per branch, in branch order), in lexicographic order."""

    def walk(block_index: int, field: ReceptiveField, chosen: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        if block_index == len(base.blocks):
            yield chosen
            return
        for combination, after in _block_steps(base, branches, field, block_index):
            yield from walk(block_index + 1, after, chosen + combination)

    yield from walk(0, base.stem_field(), ())


def count_gapless(base: ArchSpec, branches: Sequence[Branch]) -> int:
    """How many gapless assignments there are (counted by field size, without listing them)."""
    counts = {base.stem_field().size: 1}
    for block_index in range(len(base.blocks)):
        stride = _stride_before(base, block_index)
        following: dict[int, int] = {}  # field size after the block -> assignments reaching it
        for size, count in counts.items():
            for _, after in _block_steps(base, branches, ReceptiveField(size, stride), block_index):
                following[after.size] = following.get(after.size, 0) + count
        counts = following
    return sum(counts.values())


def best_gapless(
    base: ArchSpec, branches: Sequence[Branch], scores: Sequence[Sequence[Score]]
) -> tuple[int, ...] | None:
    """The gapless assignment with the highest total score (``scores[i][j]``: branch i at its j-th candidate),
    or None when there is none. Ties keep the first assignment in lexicographic order."""
    best = top_gapless(base, branches, scores, 1)
    return best[0] if best else None


def top_gapless(
    base: ArchSpec, branches: Sequence[Branch], scores: Sequence[Sequence[Score]], count: int
) -> list[tuple[int, ...]]:
    """The ``count`` gapless assignments with the highest total scores, best first (fewer when the space
    holds fewer); ties in lexicographic order. The same walk as ``best_gapless`` keeping the ``count`` best
    partial assignments per field size: any of the best completions extends one of them."""
    position = [{rate: j for j, rate in enumerate(b.candidates)} for b in branches]
    by_block = _by_block(branches)

    def order(entry: tuple[Score, tuple[int, ...]]) -> tuple[Score, tuple[int, ...]]:
        return entry[0], _negated(entry[1])

    states: dict[int, list[tuple[Score, tuple[int, ...]]]] = {base.stem_field().size: [((), ())]}
    for block_index in range(len(base.blocks)):
        stride = _stride_before(base, block_index)
        following: dict[int, list[tuple[Score, tuple[int, ...]]]] = {}  # field size -> entries reaching it
        searchable = by_block.get(block_index, [])
        for size, entries in states.items():
            steps = list(_block_steps(base, branches, ReceptiveField(size, stride), block_index))
            for combination, after in steps:
                parts = [
                    scores[i][position[i][rate]] for i, rate in zip(searchable, combination, strict=True)
                ]
                following.setdefault(after.size, []).extend(
                    (_add(total, *parts), chosen + combination) for total, chosen in entries
                )
        states = {size: heapq.nlargest(count, entries, key=order) for size, entries in following.items()}
    finished = [entry for entries in states.values() for entry in entries]
    return [rates for _, rates in heapq.nlargest(count, finished, key=order)]


def unreachable_candidates(base: ArchSpec, branches: Sequence[Branch]) -> list[tuple[int, int]]:
    """(branch index, rate) of every candidate that no gapless assignment uses.

    A forward pass collects the fields each block can be reached with, a backward pass the fields from which
    the rest of the network can still be completed without a gap; a candidate is reachable when some
    gapless step of its block from a reachable field lands on a completable one.
    """
    forward = _reachable_fields(base, branches)
    completable = forward[-1]
    used: set[tuple[int, int]] = set()
    by_block = _by_block(branches)
    for block_index in reversed(range(len(base.blocks))):
        stride, searchable, before = _stride_before(base, block_index), by_block.get(block_index, []), set()
        for size in forward[block_index]:
            for combination, after in _block_steps(base, branches, ReceptiveField(size, stride), block_index):
                if after.size in completable:
                    before.add(size)
                    used.update(zip(searchable, combination, strict=True))
        completable = before
    return [(i, rate) for i, b in enumerate(branches) for rate in b.candidates if (i, rate) not in used]


def _add(*scores: Score) -> Score:
    width = max((len(score) for score in scores), default=0)
    return tuple(sum(score[i] for score in scores if len(score) > i) for i in range(width))


def _negated(rates: tuple[int, ...]) -> tuple[int, ...]:
    """Order key that prefers the lexicographically smaller assignment among equal scores."""
    return tuple(-rate for rate in rates)


def sample_gapless(
    base: ArchSpec, branches: Sequence[Branch], count: int, seed: int
) -> list[tuple[int, ...]]:
    """``count`` distinct gapless assignments drawn uniformly (all of them when there are no more), sorted.

    Uniform over the whole space without listing it: completions are counted backwards per (block, field
    size), then each rate is drawn with probability proportional to the completions it leaves.
    """
    completions = _completion_counts(base, branches)
    total = completions[0].get(base.stem_field().size, 0)
    if count >= total:
        return list(gapless_assignments(base, branches))
    rng = random.Random(seed)
    drawn: set[tuple[int, ...]] = set()
    while len(drawn) < count:
        size = base.stem_field().size
        chosen: tuple[int, ...] = ()
        for block_index in range(len(base.blocks)):
            field = ReceptiveField(size, _stride_before(base, block_index))
            steps = [
                (combination, after.size)
                for combination, after in _block_steps(base, branches, field, block_index)
                if completions[block_index + 1].get(after.size, 0)
            ]
            weights = [completions[block_index + 1][after] for _, after in steps]
            combination, size = rng.choices(steps, weights=weights)[0]
            chosen += combination
        drawn.add(chosen)
    return sorted(drawn)


def _reachable_fields(base: ArchSpec, branches: Sequence[Branch]) -> list[set[int]]:
    """``fields[b]``: the input field sizes block b can be reached with by gapless choices before it (the last
    entry: after the last block)."""
    fields = [{base.stem_field().size}]
    for block_index in range(len(base.blocks)):
        field_stride = _stride_before(base, block_index)
        fields.append(
            {
                after.size
                for size in fields[-1]
                for _, after in _block_steps(base, branches, ReceptiveField(size, field_stride), block_index)
            }
        )
    return fields


def _completion_counts(base: ArchSpec, branches: Sequence[Branch]) -> list[dict[int, int]]:
    """``counts[b][size]``: gapless completions of blocks b.. from an input field of that size."""
    reachable = _reachable_fields(base, branches)
    counts: list[dict[int, int]] = [{} for _ in reachable]
    counts[-1] = dict.fromkeys(reachable[-1], 1)
    for block_index in reversed(range(len(base.blocks))):
        stride = _stride_before(base, block_index)
        for size in reachable[block_index]:
            field = ReceptiveField(size, stride)
            total = sum(
                counts[block_index + 1].get(after.size, 0)
                for _, after in _block_steps(base, branches, field, block_index)
            )
            if total:
                counts[block_index][size] = total
    return counts


def rates_key(rates: Sequence[int]) -> str:
    """The ``arch`` column: the searchable rates in branch order, ``2-5``."""
    return "-".join(str(rate) for rate in rates)


def rates_text(keys: Sequence[str], rates: Sequence[int]) -> str:
    """The one spelling of a pick in messages: the key and each branch, ``2-3 (block4.b1=2 block5.b1=3)``."""
    named = " ".join(f"{key}={rate}" for key, rate in zip(keys, rates, strict=True))
    return f"{rates_key(rates)} ({named})"


def parse_rates_key(key: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in key.split("-"))
    except ValueError:
        rates = ()
    if not rates or min(rates) < 1:
        raise UserError(f"arch {key!r}: expected the searchable rates joined by '-', e.g. 2-5")
    return rates
