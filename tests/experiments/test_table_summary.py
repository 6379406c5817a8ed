"""experiments/ground_truth/table_summary.py: ranks a table and says whether it tells architectures apart."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

SCRIPT = REPO / "experiments" / "ground_truth" / "table_summary.py"


def test_rows_best_first_spread_noise_and_cost(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text(
        "arch,seed,miou,cpu_seconds,cpu_model,torch_version,threads\n"
        "1-1,0,50,60,cpu,2.0,1\n1-1,1,52,60,cpu,2.0,1\n2-3,0,61,120,cpu,2.0,1\n2-3,1,59,120,cpu,2.0,1\n"
        "1-2,0,55,90,cpu,2.0,1\n"
    )
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(table)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2:5] == [
        "| 1 | 2-3 | 61.00 / 59.00 | 60.00 | 1.41 |",
        "| 2 | 1-2 | 55.00 | 55.00 | 0.00 |",
        "| 3 | 1-1 | 50.00 / 52.00 | 51.00 | 1.41 |",
    ]
    # 1-2 has one seed: left out of the spread (60 - 51 = 9) and of the noise (mean std 1.41).
    assert (
        "2 architectures with at least 2 seeds: best 2-3 60.00, worst 1-1 51.00, spread 9.00; "
        in result.stdout
    )
    assert "mean std over seeds 1.41 = 0.16 of the spread (bound: 0.25)." in result.stdout
    assert "5 retrainings, 8 CPU-minutes: 1.5 per run on average, 2.0 at most." in result.stdout
    assert "Machines: cpu, torch 2.0, 1 thread(s)" in result.stdout
