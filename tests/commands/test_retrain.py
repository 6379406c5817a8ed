"""dilnas-retrain end to end in subprocesses: run directory, resume after SIGKILL, SIGTERM, divergence,
evaluation alone, and DDP with two gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dilnas.data.factory import build_dataset
from dilnas.data.palettes import overlay, palette_for, transparent_classes
from dilnas.spec.options import DataConfig
from dilnas.train.previews import ALPHA, GAP, HEADER_HEIGHT, display_image
from dilnas.utils.checkpoints import load_checkpoint
from tests.helpers import DDP_WORKER, ENV, REPO
from tests.helpers.commands import TINY_RUN, records, tensorboard_images, wait_for_step


def retrain(run_dir: Path, *overrides: str, background: bool = False):
    command = [sys.executable, "-m", "dilnas.retrain", *TINY_RUN, f"hydra.run.dir={run_dir}", *overrides]
    if background:
        return subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_run_directory_and_eval_only(tmp_path):
    run_dir = tmp_path / "run"
    result = retrain(run_dir, "trainer.max_steps=8")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in run_dir.iterdir()} >= {
        "arch.json",
        "metrics.jsonl",
        "tb",
        "checkpoints",
        "config.yaml",
    }
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    evals = records(run_dir, "eval")
    assert [r["step"] for r in evals] == [8]
    assert "val mIoU" in result.stdout.strip().splitlines()[-1]
    # The evaluation shows column titles, then the first 4 validation images (64x64) | ground truth |
    # prediction with 4-px gaps, the classes drawn over the image (the background transparent, red in red),
    # then a legend.
    ((step, picture),) = tensorboard_images(run_dir)["val/overlays"]
    assert step == 8 and picture.shape[1] == 3 * 64 + 2 * 4
    top = HEADER_HEIGHT + GAP
    assert picture.shape[0] > top + 4 * 64 + 4 * 4  # the legend below
    assert (picture[:HEADER_HEIGHT] < 128).any()  # the titles' text
    val = build_dataset(
        DataConfig(image_size=64, context_distance=8, train_samples=32, val_samples=8), "val", train=False
    )
    palette = palette_for(3, class_names=val.class_names)
    assert palette[1].tolist() == [255, 0, 0] and transparent_classes(val.class_names) == (0,)
    for row in range(4):
        image, label = val[row]
        ground_truth = picture[top + row * 68 : top + row * 68 + 64, 68:132]
        expected = overlay(display_image(image), label.numpy(), palette, ALPHA, (0,))
        assert np.array_equal(ground_truth, expected)
        background = label.numpy() == 0
        assert np.array_equal(
            ground_truth[background], picture[top + row * 68 : top + row * 68 + 64, :64][background]
        )

    again = retrain(run_dir, "eval_only=true")
    assert again.returncode == 0, again.stderr
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["miou"] == pytest.approx(evals[0]["val/miou"], abs=1e-9)

    refused = retrain(run_dir, "trainer.max_steps=8")
    assert refused.returncode == 2
    assert "already holds a run" in refused.stderr and "resume=true" in refused.stderr

    finished = retrain(run_dir, "trainer.max_steps=8", "resume=true")  # e.g. a whole sweep resubmitted
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines()[-1] == result.stdout.strip().splitlines()[-1]  # same mIoU
    assert [r["step"] for r in records(run_dir, "eval")] == [8]  # nothing trained or evaluated again


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path):
    steps = ["trainer.max_steps=28", "trainer.checkpoint_every_steps=3"]  # 8 steps per epoch: crosses epochs
    reference = retrain(tmp_path / "reference", *steps)
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "killed"
    process = retrain(run_dir, *steps, background=True)
    wait_for_step(process, run_dir, 13)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] < 28

    resumed = retrain(run_dir, *steps, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    expected, actual = (
        weights(tmp_path / "reference" / "checkpoints" / "last.pt"),
        weights(run_dir / "checkpoints" / "last.pt"),
    )
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert [r["step"] for r in records(run_dir, "train")] == list(range(1, 29))  # no step logged twice
    # The stopped and continued run evaluates exactly as the straight one, and says it was resumed once.
    straight, continued = records(tmp_path / "reference", "eval")[-1], records(run_dir, "eval")[-1]
    assert continued["val/miou"] == straight["val/miou"]
    assert (straight["resumes"], continued["resumes"]) == (0, 1)


@pytest.mark.slow
def test_sigterm_saves_then_stops_with_one_line_and_status_143(tmp_path):
    run_dir = tmp_path / "run"
    process = retrain(run_dir, "trainer.max_steps=400", background=True)
    wait_for_step(process, run_dir, 3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert 3 <= step < 400
    assert stderr.strip().splitlines()[-1] == (
        f"dilnas-retrain: stopped by SIGTERM at step {step}; saved {run_dir / 'checkpoints' / 'last.pt'}; "
        "run the same command with resume=true to continue"
    )
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    result = retrain(run_dir, "trainer.max_steps=50", "trainer.checkpoint_every_steps=1", "optim.lr=1e30")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("dilnas-retrain: error: non-finite loss") and "Traceback" not in result.stderr
    good = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert good["step"] >= 1


def test_user_errors_are_one_line(tmp_path):
    result = retrain(tmp_path / "run", "data=cityscapes", f"data.root={tmp_path / 'nowhere'}")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nowhere" in result.stderr


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        str(DDP_WORKER),
        str(tmp_path),
        "retrain",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    for key in rank0["model"]:
        assert torch.equal(rank0["model"][key], rank1["model"][key]), key
    assert rank0["miou"] == rank1["miou"]  # the confusion matrix is all-reduced

    # The same checkpoint evaluated by a single process gives the same mIoU.
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.retrain",
            *[arg.replace("val_samples=8", "val_samples=9") for arg in TINY_RUN],  # the worker's 9
            f"hydra.run.dir={tmp_path}",
            "eval_only=true",
            f"checkpoint={tmp_path / 'checkpoints' / 'last.pt'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert single.returncode == 0, single.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["miou"] == pytest.approx(rank0["miou"], abs=1e-9)


def test_eval_only_with_a_checkpoint_that_does_not_fit(tmp_path):
    from dilnas.utils.checkpoints import save_checkpoint

    path = save_checkpoint(tmp_path / "other.pt", {"model": {"stem.conv.weight": torch.zeros(1)}})
    result = retrain(tmp_path / "run", "eval_only=true", f"checkpoint={path}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "other.pt: state dict does not fit tiny_rate1: " in lines[0]


def worker_pid(run_dir: Path, rank: int) -> int:
    """The pid of the torchrun worker of ``rank`` whose command line names ``run_dir`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # not a process, or it has just ended
            continue
        if f"hydra.run.dir={run_dir}".encode() in argv and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    pytest.fail(f"no rank {rank} worker for {run_dir}")


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_every_rank_at_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29519",
            "-m",
            "dilnas.retrain",
            *TINY_RUN,
            "trainer.max_steps=400",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    wait_for_step(process, run_dir, 3)
    os.kill(worker_pid(run_dir, 1), signal.SIGTERM)  # rank 1 only: rank 0 learns it through the all-reduce
    _, stderr = process.communicate(timeout=120)  # no rank left waiting in a collective
    assert process.returncode != 0
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert 3 <= step < 400
    stopped = [line for line in stderr.splitlines() if line.startswith("dilnas-retrain: stopped by SIGTERM")]
    assert len(stopped) == 2 and all(f"at step {step};" in line for line in stopped), stderr[-3000:]
