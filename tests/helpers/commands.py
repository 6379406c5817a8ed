"""The commands in a subprocess: tiny retraining and search runs, one-line errors, what a run records."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, TINY

# dilnas-retrain of the tiny network on small synthetic images, on the CPU.
TINY_RUN = [
    f"arch={TINY}",
    "data=synthetic",
    "data.image_size=64",
    "data.context_distance=8",
    "data.train_samples=32",
    "data.val_samples=8",
    "trainer.batch_size=4",
    "trainer.eval_every_epochs=1000",
    "trainer.log_every_steps=1",
    "optim.warmup_steps=2",
    "device=cpu",
]
# dilnas-search of the synthetic_tiny space on small synthetic images, on the CPU.
SEARCH_RUN = [
    "data.image_size=64",
    "data.context_distance=8",
    "data.train_samples=64",  # 32 for the weights, 32 held out: 4 steps of 8 per epoch
    "data.val_samples=8",
    "trainer.batch_size=8",
    "trainer.log_every_steps=1",
    "search.warmup_epochs=1",
    "search.arch_lr=0.05",
    "optim.warmup_steps=4",
    "device=cpu",
]


def run(module: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess, program: str, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{program}: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def records(run_dir: Path, kind: str) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in lines if r.get("kind") == kind]


def wait_for_step(process: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"run ended before step {step}: {process.stderr.read()}")
        if any(r["step"] >= step for r in records(run_dir, "train")):
            return
        time.sleep(0.02)
    pytest.fail(f"step {step} not reached in {timeout} s")


def tensorboard_images(run_dir: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Every image in the run's TensorBoard events: tag -> [(step, (H, W, 3) uint8 pixels)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    return {
        tag: [
            (event.step, np.array(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB")))
            for event in events.Images(tag)
        ]
        for tag in events.Tags()["images"]
    }
