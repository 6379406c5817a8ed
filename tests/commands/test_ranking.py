"""dilnas-rank end to end on a small synthetic search: the held-out scores are the search's own selection
scores (same weights, same BatchNorm re-estimation), the statistics are those of the scores it reports, and
bad input is one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dilnas.analysis.rank_stats import kendall_tau, spearman_rho
from tests.helpers import ENV
from tests.helpers.tables import QUICK, TABLE, write_table


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=ENV, timeout=900)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rank") / "search"
    result = command(
        "dilnas.search",
        *QUICK,
        "trainer.epochs=3",
        "search.warmup_epochs=1",
        "search.select_top=4",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return run


@pytest.mark.slow
def test_rank_scores_like_the_selection_and_reports_the_statistics(searched, tmp_path):
    table = write_table(tmp_path / "table.csv")
    result = command("dilnas.rank", f"run_dir={searched}", f"ground_truth={table}", "bootstrap=50")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "held-out mIoU (supernet weights)" in result.stdout and "ceiling: Kendall tau" in result.stdout
    report = json.loads((searched / "rank.json").read_text())
    archs = {entry["arch"]: entry for entry in report["archs"]}
    assert sorted(archs) == sorted(arch for arch, *_ in TABLE)
    # The search scored its shortlist the same way at its last evaluation: the same numbers.
    selection = json.loads((searched / "arch.json").read_text())["search"]["selection"]
    for entry in selection:
        key = "-".join(map(str, entry["rates"]))
        assert archs[key]["heldout_miou"] == pytest.approx(entry["miou"], abs=1e-9), key
    means = [archs[arch]["mean"] for arch in sorted(archs)]
    scores = [archs[arch]["heldout_miou"] for arch in sorted(archs)]
    assert report["heldout"]["kendall"] == pytest.approx(kendall_tau(scores, means))
    assert report["heldout"]["spearman"] == pytest.approx(spearman_rho(scores, means))
    low, high = report["heldout"]["kendall_interval"]
    assert low <= high
    # The cross-entropy ranks the other way round: the lowest loss is the best score.
    negated = [-archs[arch]["heldout_loss"] for arch in sorted(archs)]
    assert "held-out cross-entropy" in result.stdout
    assert report["heldout_loss"]["kendall"] == pytest.approx(kendall_tau(negated, means))
    # The log-probabilities are those of the run's logits: they sum to 1 over the whole space only if the
    # space had no gaps; here every architecture's probability is at most 1.
    assert all(entry["log_prob"] <= 0 for entry in archs.values())
    seed0 = [v0 for _, v0, _ in sorted(TABLE)]
    seed1 = [v1 for _, _, v1 in sorted(TABLE)]
    assert report["ceiling"] == {
        "kendall": pytest.approx(kendall_tau(seed0, seed1)),
        "seeds": [0, 1],
        "archs": 10,
    }
    assert not math.isnan(report["log_prob"]["kendall"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "key", "value"),
    [
        # without re-estimation the networks keep the supernet's statistics
        ("bn_batches=0", "bn_batches", 0),
        # other samples than the held-out split the selection scored
        ("split=eval", "split", "eval"),
    ],
)
def test_rank_options_that_score_otherwise_than_the_selection(searched, tmp_path, option, key, value):
    table = write_table(tmp_path / "table.csv")
    out = tmp_path / "rank_option.json"
    result = command(
        "dilnas.rank", f"run_dir={searched}", f"ground_truth={table}", "bootstrap=20", option, f"out={out}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report[key] == value
    selection = json.loads((searched / "arch.json").read_text())["search"]["selection"]
    scores = {entry["arch"]: entry["heldout_miou"] for entry in report["archs"]}
    assert any(abs(scores["-".join(map(str, e["rates"]))] - e["miou"]) > 1e-6 for e in selection)


@pytest.mark.slow
def test_rank_refuses_a_table_of_another_space_in_one_line(searched, tmp_path):
    table = write_table(tmp_path / "table.csv", [("1-7", 50.0, 51.0), ("2-2", 60.0, 61.0)])
    result = command("dilnas.rank", f"run_dir={searched}", f"ground_truth={table}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"dilnas-rank: error: {table}: arch 1-7 is not in search space synthetic_tiny: "
        "7 for block5.b1 (candidates 1, 2, 3, 4, 5, 6)"
    )
    missing = command("dilnas.rank", f"run_dir={tmp_path}", f"ground_truth={table}")
    assert missing.returncode == 2 and "not a dilnas-search run directory" in missing.stderr
