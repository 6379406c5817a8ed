"""Alternating benchmark rounds: every row once per round, the order rotating, ratios taken within a round."""

from __future__ import annotations

import torch

from dilnas.analysis.timing import time_alternating


def test_rows_are_timed_in_rotating_order_and_ratios_pair_rounds():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    timed = time_alternating(fns, torch.device("cpu"), warmup=1, rounds=4)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up, in order
    assert timed.orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert calls[3:] == [name for order in timed.orders for name in order]
    assert all(len(samples) == 4 for samples in timed.samples.values())
    timed.samples.update({"a": [2.0, 4.0, 6.0, 8.0], "b": [1.0, 2.0, 2.0, 2.0]})
    assert timed.ratios("a", "b") == [2.0, 2.0, 3.0, 4.0]  # round by round, not median over median
    assert timed.median_ms("a") == 5.0 and timed.min_ms("b") == 1.0
