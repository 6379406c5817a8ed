"""experiments/ground_truth/paired.py: the pre-registered comparison's table from method/seed run directories."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO
from tests.helpers.sweeps import make_run

SCRIPT = REPO / "experiments" / "ground_truth" / "paired.py"


def test_paired_regrets_against_the_baseline_and_the_missing_picks(tmp_path):
    runs = tmp_path / "runs"
    for seed, (default, random) in {
        100: ([2, 3], [1, 2]),
        101: ([2, 3], [2, 3]),
        102: ([1, 3], [1, 1]),
    }.items():
        make_run(runs / "default", str(seed), default, seed)
        make_run(runs / "random", str(seed), random, seed)
    table = tmp_path / "t.csv"
    # Means: 2-3 90, 1-3 88, 1-2 85 (best 90): regrets 0, 2, 5; 1-1 is missing from the table.
    table.write_text("arch,seed,miou\n2-3,0,90\n2-3,1,90\n1-3,0,88\n1-2,0,85\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(runs), str(table)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "| default | 3 | 0.67 | (baseline) | | |" in lines  # regrets 0, 0, 2
    # random: seeds 100 (5 - 0) and 101 (0 - 0) pair; 102 picked 1-1, not in the table.
    (random,) = [line for line in lines if line.startswith("| random |")]
    assert random.startswith("| random | 2 | 2.50 | +2.50 over 2 pairs |")
    assert random.endswith("| 0.500 (exact) |")  # patterns of (5, 0): sums 5, 5, -5, -5 -> 2 of 4 reach 5
    assert "1 picks are not in" in result.stdout and "1-1" in result.stdout
