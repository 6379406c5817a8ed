"""search.method=uniform, the ablation arm: the same supernet trained with fixed uniform logits, then the best of
search.select_top uniformly drawn gapless architectures, scored as the held-out selection scores."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dilnas.spec.gapless import gapless_assignments, sample_gapless
from dilnas.spec.space import load_space
from dilnas.utils.seeds import UNIFORM_ARCHS, derive_seed
from tests.helpers import ENV
from tests.helpers.commands import SEARCH_RUN


def search(run_dir, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dilnas.search", *SEARCH_RUN, *overrides, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )


@pytest.mark.slow
def test_uniform_keeps_the_logits_uniform_and_keeps_the_best_of_uniform_draws(tmp_path):
    overrides = (
        "search.space=synthetic_deep",
        "search.method=uniform",
        "search.select_top=5",
        "trainer.epochs=2",
    )
    result = search(tmp_path / "a", *overrides)
    assert result.returncode == 0, result.stderr[-2000:]
    history = [json.loads(line) for line in (tmp_path / "a" / "arch_history.jsonl").read_text().splitlines()]
    for record in history:  # no architecture step: every branch stays uniform
        for branch in record["branches"].values():
            assert max(branch["probs"]) == pytest.approx(min(branch["probs"]), abs=1e-6)
    arch = json.loads((tmp_path / "a" / "arch.json").read_text())
    selection = arch["search"]["selection"]
    space = load_space("synthetic_deep")
    gapless = set(gapless_assignments(space.base, space.branches))
    drawn = [tuple(entry["rates"]) for entry in selection]
    assert len(drawn) == 5 == len(set(drawn)) and set(drawn) <= gapless
    best = max(selection, key=lambda entry: entry["miou"])["rates"]
    assert [entry["choice"] for entry in arch["search"]["branches"].values()] == best
    # The draws depend on the seed only: the same seed draws the same architectures, another seed others.
    again = search(tmp_path / "b", *overrides)
    assert (
        again.returncode == 0
        and json.loads((tmp_path / "b" / "arch.json").read_text())["search"] == arch["search"]
    )
    # Another seed draws other architectures (the draws are the run's seed's UNIFORM_ARCHS stream).
    other = sample_gapless(space.base, space.branches, 5, derive_seed(1, UNIFORM_ARCHS))
    assert sorted(drawn) == sample_gapless(space.base, space.branches, 5, derive_seed(0, UNIFORM_ARCHS))
    assert other != sorted(drawn)
