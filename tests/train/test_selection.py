"""The typed held-out selection: its best (ties keep the more probable), its JSON round trip through
arch.json, and the architecture it makes."""

from __future__ import annotations

import pytest

from dilnas.spec.arch import load_arch, save_arch
from dilnas.spec.options import DeriveRule
from dilnas.spec.space import load_space
from dilnas.train.selection import ScoredArch, Selection, recorded_selection, selected_arch


def test_best_is_the_highest_score_and_ties_keep_the_earlier():
    selection = Selection((ScoredArch((2, 6), 70.0), ScoredArch((1, 3), 72.5), ScoredArch((2, 4), 72.5)))
    assert selection.rule_pick == ScoredArch((2, 6), 70.0)
    assert selection.best == ScoredArch((1, 3), 72.5)
    assert Selection((ScoredArch((1, 1), 5.0),)).best.rates == (1, 1)
    with pytest.raises(ValueError, match="at least the rule's pick"):
        Selection(())


def test_records_round_trip_and_none_for_no_selection():
    selection = Selection((ScoredArch((2, 6), 70.0), ScoredArch((1, 3), 72.5)))
    records = selection.to_records()
    assert records == [{"rates": [2, 6], "miou": 70.0}, {"rates": [1, 3], "miou": 72.5}]
    assert Selection.from_records(records) == selection
    assert Selection.from_records(None) is None and Selection.from_records([]) is None


def test_the_selected_architecture_is_the_best_and_arch_json_records_the_selection(tmp_path):
    space = load_space("synthetic_tiny")
    probs = [[0.1, 0.9], [0.05, 0.05, 0.1, 0.1, 0.1, 0.6]]  # the rule picks 2-6
    selection = Selection((ScoredArch((2, 6), 70.0), ScoredArch((1, 3), 72.5)))
    arch = selected_arch(space, probs, DeriveRule.argmax, 2, {"seed": 3}, selection)
    assert [arch.blocks[b.block].dilations[b.branch] for b in space.branches] == [1, 3]
    assert [entry["choice"] for entry in arch.search["branches"].values()] == [1, 3]
    assert arch.provenance == {"seed": 3}
    assert recorded_selection(load_arch(save_arch(arch, tmp_path / "arch.json"))) == selection
    alone = selected_arch(space, probs, DeriveRule.argmax, 2, {}, None)
    assert [alone.blocks[b.block].dilations[b.branch] for b in space.branches] == [2, 6]
    assert recorded_selection(alone) is None and "selection" not in alone.search
