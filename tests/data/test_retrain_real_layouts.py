"""dilnas-retrain end to end on tiny fake Cityscapes and CamVid trees with the paper's presets (shrunk)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ENV, REPO, TINY
from tests.helpers.commands import records
from tests.helpers.fake_data import CITYSCAPES_LABEL_IDS, write_blob_tree

SHRUNK = [
    "data.scale_range=[32,48]",
    "data.crop_size=[32,32]",
    "data.num_workers=0",
    "trainer.batch_size=2",
    "trainer.max_steps=2",
    "trainer.eval_every_epochs=1000",
    "device=cpu",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, fixture, classes",
    [("cityscapes", "cityscapes_root", 19), ("camvid_finetune", "camvid_root", 11)],
)
def test_paper_presets_train_and_evaluate(request, tmp_path, experiment, fixture, classes):
    root = request.getfixturevalue(fixture)
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.retrain",
            f"+experiment={experiment}",
            f"arch={TINY}",
            f"data.root={root}",
            *SHRUNK,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "arch.json").read_text())["num_classes"] == classes
    evaluation = records(run_dir, "eval")[-1]
    assert evaluation["step"] == 2 and 0.0 <= evaluation["val/miou"] <= 100.0
    assert sum(key.startswith("val/iou/") for key in evaluation) >= 1


def retrain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dilnas.retrain", f"arch={TINY}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )


def test_missing_root_is_one_line(tmp_path):
    result = retrain(
        "+experiment=cityscapes", f"data.root={tmp_path / 'absent'}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "absent" in lines[0] and "leftImg8bit/train/<city>" in lines[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_a_loader_worker_is_the_same_one_line(cityscapes_root, tmp_path, workers):
    images = sorted((cityscapes_root / "leftImg8bit" / "train").rglob("*.png"))
    for image in images:  # whichever the first batch draws
        image.write_bytes(b"not a png")
    result = retrain(
        "data=cityscapes",
        f"data.root={cityscapes_root}",
        *[arg for arg in SHRUNK if not arg.startswith("data.num_workers")],
        f"data.num_workers={workers}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("dilnas-retrain: error: ") and ": cannot read image" in lines[-1], (
        result.stderr
    )
    assert any(f"error: {image}: cannot read image" in lines[-1] for image in images)
    assert "Traceback" not in result.stderr and "worker" not in lines[-1]


def test_cityscapes_preset_retrains_with_class_uniform_and_randaug(tmp_path):
    """+experiment=cityscapes turns both on: the centroids are computed and cached beside the data (their reuse,
    resumption and DDP shards: tests/data/test_class_uniform.py)."""
    root = write_blob_tree(tmp_path / "cityscapes", background=CITYSCAPES_LABEL_IDS[0])  # road: no empty crop
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "dilnas.retrain",
        "+experiment=cityscapes",
        f"arch={TINY}",
        f"data.root={root}",
        *SHRUNK,
        "data.scale_range=[24,40]",
        "data.crop_size=[16,16]",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr
    log = (run_dir / "retrain.log").read_text()
    assert "class-uniform sampling: 19 of 40 samples per epoch around class centroids (1 per class)" in log
    assert "centroids computed" in log
    assert (root / ".dilnas-cache" / "class_centroids_train_tile1024.json").is_file()
    assert records(run_dir, "eval")[-1]["step"] == 2
