"""experiments/ground_truth/preregistered.sh: the plan's arms and seeds, as the commands it would run."""

from __future__ import annotations

import os
import subprocess

from tests.helpers import REPO

SCRIPT = REPO / "experiments" / "ground_truth" / "preregistered.sh"


def dry_run(out, *args, **env):
    """The script with ``echo`` for Python: each search's command lands in its log."""
    return subprocess.run(
        ["bash", SCRIPT, out, *args],
        cwd=REPO,
        env={**os.environ, "PYTHON": "echo", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_seed_of_the_plan_gets_three_arms_on_its_own_held_out_split(tmp_path):
    result = dry_run(tmp_path, "synthetic_deep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("preregistered: synthetic_deep") == 60  # seeds 100..119, three arms
    random = (tmp_path / "synthetic_deep" / "random" / "119.log").read_text()
    assert "seed=119 search.heldout_seed=119 resume=true search.method=random" in random
    assert "search.random_steps" not in random  # unset: the option's own default
    uniform = (tmp_path / "synthetic_deep" / "uniform" / "100.log").read_text()
    assert "search.method=uniform" in uniform and "search.space=synthetic_deep" in uniform


def test_camvid_seeds_and_the_measured_random_steps(tmp_path):
    result = dry_run(tmp_path, "camvid_lite", RANDOM_STEPS="300")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("preregistered: camvid_lite") == 24  # seeds 100..107
    random = (tmp_path / "camvid_lite" / "random" / "107.log").read_text()
    assert "+experiment=camvid_lite_search" in random and "search.random_steps=300" in random
    bad = dry_run(tmp_path, "cityscapes")
    assert bad.returncode == 2 and "unknown space cityscapes" in bad.stderr
