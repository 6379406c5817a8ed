"""experiments/camvid/full_scale.sh (the CamVid protocol at full scale, for a GPU machine) runs every stage
end to end on a fake CamVid tree with DRY_RUN=1 (2 steps each, on the CPU) and writes its tables."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO

SCRIPT = REPO / "experiments" / "camvid" / "full_scale.sh"


def fake_camvid(root: Path, train: int = 6, val: int = 2) -> Path:
    """A CamVid tree of 48x64 images with labels cycling through the 11 classes and void (11)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            for folder, array in (
                (split, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)),
                (f"{split}annot", ((np.arange(48 * 64).reshape(48, 64) + index) % 12).astype(np.uint8)),
            ):
                (root / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / folder / f"0016E5_{index:05d}.png")
    return root


def run_script(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)], cwd=REPO, capture_output=True, text=True, env=env, timeout=900
    )


@pytest.mark.slow
def test_dry_run_writes_every_table(tmp_path):
    data = fake_camvid(tmp_path / "camvid")
    out = tmp_path / "out"
    result = run_script(out, data)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lite = list(csv.DictReader((out / "tables" / "lite_ground_truth.csv").open()))
    # One drawn architecture and the three reference rows, one seed each.
    assert {"1-1-1-1", "1-2-4-4", "2-5-5-5"} <= {row["arch"] for row in lite} and len(lite) == 4
    assert all(row["steps"] == "2" for row in lite)
    searched = json.loads((out / "tables" / "search_arch.json").read_text())
    assert searched["search"]["space"] == "regseg_exp48" and searched["num_classes"] == 11
    full = list(csv.DictReader((out / "tables" / "full_ground_truth.csv").open()))
    paper = "1-2-4-4-4-4-14-14-14-14-14-14-14"  # exp48_decoder26 as a point of regseg_exp48
    assert paper in {row["arch"] for row in full} and 2 <= len(full) <= 3
    # Again: every stage sees its work done and nothing is trained twice.
    again = run_script(out, data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("0 runs to do") == 2


def test_a_folder_that_is_not_camvid_is_refused_in_one_line(tmp_path):
    result = run_script(tmp_path / "out", tmp_path)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert (
        result.stderr.strip()
        == f"{SCRIPT}: {tmp_path} is not a CamVid root (expected train/ trainannot/ val/ valannot/)"
    )
