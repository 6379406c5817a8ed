"""experiments/ground_truth/ranking/few_shot.py: sub-spaces that together hold exactly the space, and a ranking
that scores each architecture with the supernet of the sub-space holding it, as that search scored it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from dilnas.analysis.ground_truth import final_eval
from dilnas.analysis.rank_stats import kendall_tau
from dilnas.spec.gapless import count_gapless
from dilnas.spec.space import load_space
from tests.helpers import ENV, REPO
from tests.helpers.tables import QUICK, TABLE, write_table

SCRIPT = REPO / "experiments" / "ground_truth" / "ranking" / "few_shot.py"


def few_shot(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_sub_spaces_partition_the_gapless_architectures(tmp_path):
    done = few_shot("spaces", "synthetic_deep", "block4.b1", tmp_path)
    assert done.returncode == 0, done.stderr
    whole = load_space("synthetic_deep")
    subs = [load_space(tmp_path / f"synthetic_deep_block4b1_{rate}.yaml") for rate in (1, 2)]
    assert [sub.branches[0].candidates for sub in subs] == [(1,), (2,)]
    # Rate 1 in block 4 lowers block 5's no-gap bound from 6 to 4: the sub-spaces keep the rule.
    assert [sub.branches[1].candidates for sub in subs] == [(1, 2, 3, 4), (1, 2, 3, 4, 5, 6)]
    counts = [count_gapless(sub.base, sub.branches) for sub in subs]
    assert counts == [144, 216] and sum(counts) == count_gapless(whole.base, whole.branches) == 360
    # Only the rates differ: the expanded ``repeat`` blocks keep channels, strides and group widths.
    shape = [replace(block, dilations=()) for block in whole.base.blocks]
    assert all([replace(block, dilations=()) for block in sub.base.blocks] == shape for sub in subs)


def test_an_unknown_branch_is_one_line(tmp_path):
    done = few_shot("spaces", "synthetic_deep", "block3.b1", tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip().startswith("few_shot: error: ")
        and "no searchable branch block3.b1" in done.stderr
    )
    assert "block4.b1, block5.b1" in done.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_each_architecture_is_scored_by_its_own_sub_supernet(tmp_path):
    assert few_shot("spaces", "synthetic_tiny", "block4.b1", tmp_path).returncode == 0
    runs = []
    for rate in (1, 2):
        run = tmp_path / f"run{rate}"
        space = tmp_path / f"synthetic_tiny_block4b1_{rate}.yaml"
        search = [
            "trainer.epochs=3",
            "search.warmup_epochs=1",
            "search.select_top=3",
            f"search.space={space}",
        ]
        done = subprocess.run(
            [sys.executable, "-m", "dilnas.search", *QUICK, *search, f"hydra.run.dir={run}"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(run)
    table = write_table(tmp_path / "table.csv")
    done = few_shot("rank", table, tmp_path / "fs", *runs)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "fs" / "rank.json").read_text())
    scores = {entry["arch"]: entry for entry in report["archs"]}
    assert sorted(scores) == sorted(arch for arch, *_ in TABLE)
    # Each search's shortlist was scored by its own supernet, the way the ranking scores it.
    for run in runs:
        for entry in json.loads((run / "arch.json").read_text())["search"]["selection"]:
            key = "-".join(map(str, entry["rates"]))
            assert scores[key]["heldout_miou"] == pytest.approx(entry["miou"], abs=1e-9), (run, key)
    # The fixed branch has one candidate: its log-probability is 0, so 1-x and 2-x compare on block 5 only.
    assert all(entry["log_prob"] <= 0 for entry in scores.values())
    means = {arch: sum(values) / len(values) for arch, *values in TABLE}
    archs = sorted(scores)
    held = kendall_tau([scores[a]["heldout_miou"] for a in archs], [means[a] for a in archs])
    assert report["heldout"]["kendall"] == pytest.approx(held)
    cpu = sum(final_eval(run / "metrics.jsonl")["cpu_seconds"] for run in runs)
    assert report["search_cpu_seconds"] == pytest.approx(cpu) and cpu > 0
    assert f"{cpu:.1f} CPU-s in all" in done.stdout
    # collect.py's row of the few-shot report: its taus, and the sub-searches' summed cost.
    collect = REPO / "experiments" / "ground_truth" / "ranking" / "collect.py"
    csv = tmp_path / "runs.csv"
    rows = subprocess.run(
        [sys.executable, collect, csv, tmp_path / "fs"], env=ENV, capture_output=True, text=True
    )
    assert rows.returncode == 0, rows.stderr
    header, line = csv.read_text().splitlines()
    row = dict(zip(header.split(","), line.split(","), strict=True))
    assert row["run"] == "fs" and float(row["kendall"]) == round(held, 3)
    assert float(row["search_cpu_seconds"]) == round(cpu, 1)
    # An architecture that no run's space holds is named, in one line, and nothing is written.
    wrong = write_table(tmp_path / "wrong.csv", [("1-5", 50.0, 51.0), ("2-2", 60.0, 61.0)])
    refused = few_shot("rank", wrong, tmp_path / "wrong", *runs)
    assert refused.returncode == 2 and not (tmp_path / "wrong").exists()
    assert refused.stderr.strip() == f"few_shot: error: {wrong}: no run's space holds 1-5"
