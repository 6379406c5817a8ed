"""Nothing lost: one writer per run directory (a kernel-released lock), Ctrl-C stops like SIGTERM (a checkpoint
and one line), and dilnas-grid passes a stop signal on to its retraining and leaves no orphan."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dilnas.utils.checkpoints import load_checkpoint
from tests.helpers import ENV, REPO
from tests.helpers.commands import TINY_RUN, wait_for_step


def retrain(run_dir: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "dilnas.retrain", *TINY_RUN, f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )


def _interruptible() -> None:
    """SIGINT as at a terminal. A suite started in the background (``make test &``) passes SIGINT on ignored,
    and dilnas rightly leaves an ignored signal ignored (``dilnas.train.signals``): its run would never see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    first = retrain(run_dir, "trainer.max_steps=2000")
    try:
        wait_for_step(first, run_dir, 2)
        config = (run_dir / "config.yaml").read_bytes()
        second = retrain(run_dir, "trainer.max_steps=2000", "resume=true")
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 2, stderr
        assert stderr.strip() == (
            f"dilnas-retrain: error: {run_dir}: another dilnas run (pid {first.pid}) is writing this run "
            "directory; wait for it to end, or choose another hydra.run.dir"
        )
        assert (run_dir / "config.yaml").read_bytes() == config
    finally:
        first.kill()
        first.wait()
    # The kernel released the killed run's lock: it resumes.
    resumed = retrain(run_dir, "trainer.max_steps=6", "resume=true")
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr


@pytest.mark.slow
def test_ctrl_c_saves_and_stops_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    # More steps than it can take before the signal: the signal, not the step count, has to end it.
    process = retrain(run_dir, "trainer.max_steps=1000000")
    try:
        wait_for_step(process, run_dir, 3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGINT, stderr
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert stderr.strip().splitlines()[-1] == (
        f"dilnas-retrain: stopped by SIGINT at step {step}; saved {run_dir / 'checkpoints' / 'last.pt'}; "
        "run the same command with resume=true to continue"
    )
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the child")
def test_grid_passes_a_stop_signal_on_and_leaves_no_orphan(tmp_path):
    signum = signal.SIGINT  # Ctrl-C; SIGTERM and SIGUSR2 take the same path (dilnas.utils.processes)
    out = tmp_path / "grid"
    quick = [o for o in TINY_RUN if not o.startswith("arch=")] + ["trainer.max_steps=2000"]
    retrain_overrides = "[" + ",".join(f'"{o}"' for o in quick) + "]"
    command = [sys.executable, "-m", "dilnas.grid", "space=synthetic_tiny", "sample=1", "seeds=[0]"]
    grid = subprocess.Popen(
        [*command, f"out={out}", f"retrain={retrain_overrides}"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    runs = out / "runs"
    while time.monotonic() < deadline and not list(runs.glob("*/seed0/metrics.jsonl")):
        assert grid.poll() is None, grid.stderr.read()
        time.sleep(0.1)
    (run_dir,) = [path.parent for path in runs.glob("*/seed0/metrics.jsonl")]
    child = children_of(grid.pid)
    assert len(child) == 1
    wait_for_step(grid, run_dir, 3)
    # One grid retrains a seed of a directory at a time: a second one is refused, naming the first.
    second = subprocess.run(
        [*command, f"out={out}", f"retrain={retrain_overrides}"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 2
    assert f"{out}: another dilnas run (pid {grid.pid}) is writing seed 0 of this grid" in second.stderr
    grid.send_signal(signum)
    _, stderr = grid.communicate(timeout=120)
    assert grid.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1] == (
        f"dilnas-grid: stopped by {name}; the runs saved their checkpoints; run the same dilnas-grid command "
        "to continue"
    )
    assert "Traceback" not in stderr
    assert not Path(f"/proc/{child[0]}").exists()  # the retraining ended with its parent
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] >= 3


def test_retrain_refuses_a_search_run_directory_in_one_line(tmp_path):
    search_dir = tmp_path / "search"
    search_dir.mkdir()
    (search_dir / "space.yaml").write_text((REPO / "search_spaces" / "synthetic_tiny.yaml").read_text())
    (search_dir / "config.yaml").write_text("seed: 0\n")
    before = {path.name: path.read_bytes() for path in search_dir.iterdir()}
    process = retrain(search_dir, "resume=true")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip() == (
        f"dilnas-retrain: error: {search_dir} is a dilnas-search run directory; dilnas-retrain needs its own: "
        "choose another hydra.run.dir"
    )
    assert {path.name: path.read_bytes() for path in search_dir.iterdir()} == before


@pytest.mark.slow
def test_bad_data_found_while_training_leaves_no_run_directory(tmp_path):
    from tests.helpers.fake_data import CAMVID_FILES, cycling_label, random_image, write_png

    root = tmp_path / "camvid"
    for seed, (split, name) in enumerate(CAMVID_FILES):
        write_png(root / split / f"{name}.png", random_image(seed))
        label = cycling_label(seed, num_ids=12)
        if split == "train":
            label[0, 0] = 200  # no CamVid class: found only when the first batch is read
        write_png(root / f"{split}annot" / f"{name}.png", label)
    run_dir = tmp_path / "runs" / "camvid"
    command = [
        sys.executable,
        "-m",
        "dilnas.retrain",
        *[o for o in TINY_RUN if not o.startswith("data")],
        "data=camvid",
        f"data.root={root}",
        "data.train_split=train",
        "data.eval_split=val",
        "data.scale_range=[32,48]",
        "data.crop_size=[32,32]",
        "data.num_workers=0",
        "trainer.batch_size=2",
        "trainer.max_steps=4",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "200" in result.stderr
    assert not run_dir.exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_resume_by_directory_alone_takes_the_runs_own_overrides(tmp_path):
    run_dir = tmp_path / "run"
    process = retrain(run_dir, "trainer.max_steps=120", "seed=3")
    wait_for_step(process, run_dir, 3)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    assert stopped_at < 120
    resumed = subprocess.run(
        [sys.executable, "-m", "dilnas.retrain", "resume=true", f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 120
    assert "seed=3" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    # A setting given again must still match the run's: another seed is refused.
    other = subprocess.run(
        [sys.executable, "-m", "dilnas.retrain", "resume=true", f"hydra.run.dir={run_dir}", "seed=4"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert other.returncode == 2 and "seed (3 then, 4 now)" in other.stderr
