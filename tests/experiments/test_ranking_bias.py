"""experiments/ground_truth/ranking/bias.py: do ranked runs agree with each other more than with the table?"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ENV, REPO

SCRIPT = REPO / "experiments" / "ground_truth" / "ranking" / "bias.py"
ARCHS = ("1-1", "1-2", "2-1", "2-2")
MEANS = (4.0, 3.0, 2.0, 1.0)


def ranked(folder, heldout, log_prob=None):
    folder.mkdir()
    entries = [
        {
            "arch": arch,
            "mean": mean,
            "heldout_miou": score,
            "log_prob": None if log_prob is None else log_prob[i],
        }
        for i, (arch, mean, score) in enumerate(zip(ARCHS, MEANS, heldout, strict=True))
    ]
    (folder / "rank.json").write_text(json.dumps({"archs": entries}))
    return folder


def test_hand_computed_agreements(tmp_path):
    a = ranked(tmp_path / "a", (4, 3, 2, 1), log_prob=(0, -1, -2, -3))
    b = ranked(tmp_path / "b", (4, 3, 1, 2)) / "rank.json"  # a report, not a run directory: named "b/rank"
    done = subprocess.run([sys.executable, SCRIPT, a, b], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:5]}
    # a orders as the table (1), b swaps the last two (5 of 6 pairs agree: 4/6); the sum of rates (2, 3, 3, 4)
    # runs against the table with one tie: tau-b -5/sqrt(6*5)
    assert rows["a"] == ["1.000", "-0.913", "1.00", "0.67"]
    # b against the sum of rates (2, 3, 3, 4): 1 pair agrees, 4 do not, 1 tie: -3/sqrt(6*5)
    assert rows["b/rank"] == ["0.667", "-0.548", "0.67", "1.00"]
    # standardised sum (2.68, 0.89, -1.79, -1.79): one tie, tau-b 5/sqrt(6*5); only a has log-probabilities
    assert "held-out scores vs the table: 0.913" in done.stdout
    assert "ensemble of the 1 runs' log-probabilities vs the table: 1.000" in done.stdout
    assert "the sum of the rates: -0.913 (per branch: -0.82, -0.41)" in done.stdout
