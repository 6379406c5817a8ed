"""experiments/camvid/reevaluate.py: a grid's cells evaluated again from their final weights, as a table."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from tests.helpers import ENV, REPO

SCRIPT = REPO / "experiments" / "camvid" / "reevaluate.py"
TINY = '"trainer.max_steps=2","data.train_samples=16","data.val_samples=4","data.image_size=64","data.context_distance=8"'


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_same_evaluation_gives_the_grids_numbers_and_adds_its_cost(tmp_path):
    out = tmp_path / "grid"
    grid = run("-m", "dilnas.grid", f"out={out}", "sample=2", "seeds=[0]", f"retrain=[{TINY}]")
    assert grid.returncode == 0, grid.stderr[-2000:]
    table = tmp_path / "again.csv"
    again = run(SCRIPT, out, table, "--data", tmp_path / "unused")  # synthetic data: generated, no root
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().endswith(f"{table}: 2 rows (2 evaluated, 0 kept)")
    before = {(r["arch"], r["seed"]): r for r in csv.DictReader((out / "ground_truth.csv").open())}
    after = {(r["arch"], r["seed"]): r for r in csv.DictReader(table.open())}
    assert after.keys() == before.keys()
    for key, row in after.items():
        assert float(row["miou"]) == pytest.approx(float(before[key]["miou"]), abs=1e-3)  # deterministic
        assert float(row["cpu_seconds"]) > float(before[key]["cpu_seconds"])  # the evaluation's cost added
        assert row["run"] == before[key]["run"] and row["steps"] == before[key]["steps"]
    # Run again on the same table: the rows it holds are kept as they are (their cost is not measured twice),
    # a cell the table lacks is evaluated; --again evaluates every cell.
    header, first, _ = table.read_text().splitlines()
    marked = first.split(",")
    marked[header.split(",").index("cpu_seconds")] = "12345.0"  # the table keeps the first cell only
    table.write_text(f"{header}\n{','.join(marked)}\n")
    resumed = run(SCRIPT, out, table, "--data", tmp_path / "unused")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.strip().endswith(f"{table}: 2 rows (1 evaluated, 1 kept)")
    rows = list(csv.DictReader(table.open()))
    assert sorted(float(r["cpu_seconds"]) == 12345.0 for r in rows) == [False, True]
    redone = run(SCRIPT, out, table, "--data", tmp_path / "unused", "--again")
    assert redone.stdout.strip().endswith("(2 evaluated, 0 kept)"), redone.stderr[-2000:]
    assert all(float(r["cpu_seconds"]) != 12345.0 for r in csv.DictReader(table.open()))
    # A table it cannot read is refused in one line, and left as it was.
    table.write_text("arch,seed\nnot-an-arch,x\n")
    refused = run(SCRIPT, out, table, "--data", tmp_path / "unused")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.startswith("reevaluate.py: error: ") and len(refused.stderr.strip().splitlines()) == 1
    )
    assert table.read_text() == "arch,seed\nnot-an-arch,x\n"
