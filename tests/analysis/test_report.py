"""dilnas-report: a sweep of search runs summarised (rows, agreement, consensus), and its one-line errors.

The sweeps are fake (tests.helpers.sweeps): arch.json files derived from chosen probabilities, with hand-written
metrics.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dilnas.analysis.sweep_summary import read_metrics, report_sweep
from dilnas.spec.arch import load_arch
from dilnas.train.run_dir import find_runs
from dilnas.utils.errors import UserError
from tests.helpers.sweeps import SPACE, make_run, metrics_lines

KEYS = ["block4.b1", "block5.b1"]


@pytest.fixture()
def sweep_dir(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    for seed, rates in enumerate([[2, 4], [2, 4], [1, 3]]):
        make_run(root, str(seed), rates, seed)
    return root


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dilnas.report", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# ---- the library ---------------------------------------------------------------------------------
def test_report_rows_agreement_and_consensus(sweep_dir):
    summary = report_sweep(sweep_dir)
    runs = summary["runs"]
    assert [run["run"] for run in runs] == ["0", "1", "2"]
    assert [run["overrides"] for run in runs] == [[f"seed={i}", "search.arch_lr=0.1"] for i in range(3)]
    assert [list(run["rates"].values()) for run in runs] == [[2, 4], [2, 4], [1, 3]]
    assert list(runs[0]["rates"]) == KEYS
    assert runs[0]["field_of_view"] == SPACE.arch_with([2, 4]).field_of_view
    # The last eval record counts, not the first.
    assert runs[1]["miou"] == 61.0 and runs[1]["miou_supernet"] == 66.0 and runs[1]["gap"] == 5.0
    assert runs[1]["wall_time_s"] == 60.0

    agreement = summary["agreement"]
    assert list(agreement) == KEYS
    assert agreement["block4.b1"]["rate"] == 2 and agreement["block4.b1"]["share"] == pytest.approx(2 / 3)
    assert agreement["block4.b1"]["counts"] == [1, 2]
    assert agreement["block5.b1"]["rate"] == 4 and agreement["block5.b1"]["share"] == pytest.approx(2 / 3)
    assert agreement["block5.b1"]["counts"] == [0, 0, 1, 2, 0, 0]

    assert summary["consensus"]["rates"] == {"block4.b1": 2, "block5.b1": 4}
    consensus = load_arch(sweep_dir / "consensus_arch.json")  # what dilnas-retrain reads
    assert consensus.gaps() == []
    assert [block.dilations for block in consensus.blocks[4:6]] == [(1, 2), (1, 4)]
    assert consensus.field_of_view == summary["consensus"]["field_of_view"]
    assert consensus.search["rule"] == "consensus"
    assert consensus.search["space_digest"] == SPACE.digest
    assert consensus.search["runs"] == ["0", "1", "2"]
    assert consensus.search["branches"]["block5.b1"] == {
        "rates": [1, 2, 3, 4, 5, 6],
        "probs": pytest.approx([0, 0, 1 / 3, 2 / 3, 0, 0]),
        "choice": 4,
    }

    assert json.loads((sweep_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert not [path for path in sweep_dir.rglob("*.tmp")]


def test_report_csv_and_markdown(sweep_dir):
    report_sweep(sweep_dir)
    with (sweep_dir / "summary.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "run",
        "overrides",
        *KEYS,
        "field_of_view",
        "miou_supernet",
        "miou",
        "gap",
        "wall_time_s",
        "cpu_seconds",
        "pick_miou",
        "regret",
        "percentile",
    ]
    assert len(rows) == 4
    assert rows[3][:4] == ["2", "seed=2 search.arch_lr=0.1", "1", "3"]
    assert [float(value) for value in rows[3][5:9]] == [67.0, 62.0, 5.0, 60.0]
    assert rows[3][9:] == ["", "", "", ""]  # no cost logged, no ground truth given

    markdown = (sweep_dir / "summary.md").read_text()
    assert "| run | rates | fov | supernet mIoU | derived mIoU | gap | wall s | cpu s |" in markdown
    assert "| 2 | 1 3 |" in markdown
    assert "| block4.b1 | 2 | 2/3 | 0.667 | 2 |" in markdown
    assert "consensus_arch.json" in markdown


def test_consensus_obeys_the_no_gap_rule(tmp_path):
    # block4.b1: 1 wins 3 to 2; block5.b1: 6 is most chosen, but only after block4.b1 = 2 (with 1 it would
    # leave a gap: the bound is 4). The consensus is the gapless pair with the highest product of vote shares:
    # (2, 6) at 0.4 x 0.4 beats (1, 2|3|4) at 0.6 x 0.2, where a block-by-block choice would take (1, 2).
    root = tmp_path / "sweep"
    for seed, rates in enumerate([[2, 6], [2, 6], [1, 2], [1, 3], [1, 4]]):
        make_run(root, str(seed), rates, seed)
    summary = report_sweep(root)
    assert summary["agreement"]["block5.b1"]["rate"] == 6
    assert summary["agreement"]["block5.b1"]["share"] == pytest.approx(0.4)
    assert summary["consensus"]["rates"] == {"block4.b1": 2, "block5.b1": 6}
    assert load_arch(root / "consensus_arch.json").gaps() == []
    assert summary["consensus"]["picked_by"] == 2 and not summary["consensus"]["tie"]


def test_a_tied_consensus_is_one_a_run_picked_and_says_so(tmp_path):
    # Two runs, 1-3 and 2-1: every pair of their rates ties at 0.5 x 0.5, and the smallest rates (1-1), which
    # no run picked, would win a tie broken by rate. The consensus is a pick, and flagged as a tie.
    root = tmp_path / "sweep"
    make_run(root, "0", [1, 3], 0)
    make_run(root, "1", [2, 1], 1)
    summary = report_sweep(root)
    consensus = summary["consensus"]
    assert list(consensus["rates"].values()) in ([1, 3], [2, 1])
    assert consensus["tie"] and consensus["picked_by"] == 1 and consensus["runs"] == 2
    assert consensus["vote_product"] == pytest.approx(0.25)
    markdown = (root / "summary.md").read_text()
    assert (
        "Picked by 1 of 2 runs; product of its vote shares 0.25. It ties with other architectures" in markdown
    )


def test_run_without_metrics_is_listed(sweep_dir):
    make_run(sweep_dir, "3", [1, 2], 3, metrics=False)
    # A run still writing: its metrics end in a half-written line, and no evaluation yet.
    running = make_run(sweep_dir, "10", [2, 5], 10, metrics=False)
    (running / "metrics.jsonl").write_text(json.dumps(metrics_lines(50.0)[0]) + '\n{"step": 2')
    summary = report_sweep(sweep_dir)
    runs = {run["run"]: run for run in summary["runs"]}
    assert list(runs) == ["0", "1", "2", "3", "10"]  # natural order of Hydra's job numbers
    for name in ("3", "10"):
        assert (
            runs[name]["miou"] is None and runs[name]["miou_supernet"] is None and runs[name]["gap"] is None
        )
    assert runs["3"]["wall_time_s"] is None
    assert runs["10"]["wall_time_s"] == 0.0
    with (sweep_dir / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and rows[3]["miou"] == "" and rows[3]["wall_time_s"] == ""


def test_overrides_fall_back_to_the_arch_provenance(sweep_dir):
    shutil.rmtree(sweep_dir / "1" / ".hydra")
    runs = report_sweep(sweep_dir)["runs"]
    assert runs[1]["overrides"] == ["seed=1"]


def test_corrupt_metrics_line_is_an_error(sweep_dir):
    path = sweep_dir / "1" / "metrics.jsonl"
    path.write_text("{oops\n" + path.read_text())
    with pytest.raises(UserError, match=r"metrics.jsonl:1: not valid JSON"):
        report_sweep(sweep_dir)


def test_read_metrics_missing_file(tmp_path):
    assert read_metrics(tmp_path / "metrics.jsonl") == dict(
        miou_supernet=None, miou=None, gap=None, wall_time_s=None, cpu_seconds=None
    )


def test_find_runs_is_recursive_and_sorted(tmp_path):
    for name in ("b/2", "a", "b/10", "b/1"):
        make_run(tmp_path, name, [2, 4], 0, metrics=False)
    assert [path.relative_to(tmp_path).as_posix() for path in find_runs(tmp_path)] == [
        "a",
        "b/1",
        "b/2",
        "b/10",
    ]


# ---- errors --------------------------------------------------------------------------------------
def test_mismatched_spaces(sweep_dir):
    space_file = sweep_dir / "2" / "space.yaml"
    text = space_file.read_text()
    assert "dilations: [1, auto]" in text
    space_file.write_text(text.replace("dilations: [1, auto]", "dilations: [1, {auto: true, max: 5}]"))
    with pytest.raises(UserError, match=r"runs 0 and 2 searched different spaces") as error:
        report_sweep(sweep_dir)
    assert "\n" not in str(error.value)
    assert not (sweep_dir / "summary.json").exists()  # nothing written


def test_missing_and_empty_sweep_dir(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        report_sweep(tmp_path / "absent")
    (tmp_path / "empty" / "0").mkdir(parents=True)
    with pytest.raises(UserError, match=r"no arch.json in this directory or below it"):
        report_sweep(tmp_path / "empty")


def test_invalid_arch_is_an_error(sweep_dir):
    path = sweep_dir / "1" / "arch.json"
    data = json.loads(path.read_text())
    data["blocks"][5]["dilations"] = [1, 9]  # a gap
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"1/arch.json") as error:
        report_sweep(sweep_dir)
    assert "\n" not in str(error.value)


# ---- the command ---------------------------------------------------------------------------------
def test_cli(sweep_dir, tmp_path):
    result = run_cli(f"sweep_dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in ("consensus_arch.json", "summary.md", "summary.csv", "summary.json"):
        assert str(sweep_dir / name) in lines
    assert any(line.split()[:3] == ["2", "1", "3"] for line in lines)  # run 2, rates 1 3
    assert any(line.split()[:4] == ["block5.b1", "4", "2/3", "0.667"] for line in lines)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multirun"]  # Hydra wrote nothing


def test_cli_missing_sweep_dir(tmp_path):
    result = run_cli(f"sweep_dir={tmp_path / 'absent'}", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dilnas-report: error: ") and "no such directory" in lines[0]
    assert list(tmp_path.iterdir()) == []
