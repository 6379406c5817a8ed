"""dilnas-plot: arch_history.jsonl of a run or a sweep rendered to images, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dilnas.analysis.search_history import find_histories, load_history, plot_evolution
from dilnas.utils.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BRANCH_RATES = {"block4.b1": [1, 2], "block5.b1": [1, 2, 3, 4, 5, 6], "block6.b0": [1, 4]}
DPI = 40  # small images keep the tests fast


def history_line(epoch: int, shift: float = 0.0, rates: dict[str, list[int]] = BRANCH_RATES) -> str:
    """One epoch whose probabilities move towards the largest rate as epochs pass."""
    branches = {}
    for key, candidates in rates.items():
        weights = [1.0 + (epoch + shift) * index for index in range(len(candidates))]
        probs = [weight / sum(weights) for weight in weights]
        branches[key] = {
            "rates": candidates,
            "probs": probs,
            "choice": candidates[probs.index(max(probs))],
            "expected": sum(rate * prob for rate, prob in zip(candidates, probs, strict=True)),
            "entropy": 0.5,
        }
    record = {"epoch": epoch, "step": 40 * epoch, "temperature": 1.0, "field_of_view": 200 + 10 * epoch}
    return json.dumps({**record, "branches": branches})


def write_history(run: Path, epochs: int = 4, shift: float = 0.0) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / "arch_history.jsonl"
    path.write_text("".join(history_line(epoch, shift) + "\n" for epoch in range(epochs)))
    return path


def assert_png(path: Path, min_width: int = 100) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert min_width <= width <= 4000 and 50 <= height <= 4000 and width > height


def temporary_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".tmp")]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dilnas.plot", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---- reading -------------------------------------------------------------------------------------
def test_load_history_keeps_branch_order_and_last_duplicate_epoch(tmp_path):
    path = write_history(tmp_path / "run", epochs=3)
    # A resumed run repeats epoch 2: the later line wins; blank lines are skipped.
    with path.open("a") as handle:
        handle.write("\n" + history_line(2, shift=5.0) + "\n")
    history = load_history(path)
    assert history.epochs == [0, 1, 2]
    assert history.field_of_view == [200, 210, 220]
    assert list(history.branches) == ["block4.b1", "block5.b1", "block6.b0"]
    block5 = history.branches["block5.b1"]
    assert block5.rates == (1, 2, 3, 4, 5, 6)
    assert block5.epochs == [0, 1, 2]
    assert block5.final_choice == 6
    assert block5.probs[-1] == json.loads(history_line(2, shift=5.0))["branches"]["block5.b1"]["probs"]


def test_find_histories_is_recursive_and_sorted(tmp_path):
    for name in ("b/1", "a", "b/0/nested"):
        write_history(tmp_path / name, epochs=1)
    found = [path.parent.relative_to(tmp_path).as_posix() for path in find_histories(tmp_path)]
    assert found == ["a", "b/0/nested", "b/1"]


# ---- rendering -----------------------------------------------------------------------------------
def test_single_run_writes_a_png(tmp_path):
    run = tmp_path / "run"
    write_history(run)
    written = plot_evolution(run, dpi=DPI)
    assert written == [run / "arch_evolution.png"]
    assert_png(written[0])
    # out= sends it elsewhere (a file or an existing folder); the history file itself is accepted.
    elsewhere = plot_evolution(run / "arch_history.jsonl", out=tmp_path / "plots" / "x.png", dpi=DPI)
    assert elsewhere == [tmp_path / "plots" / "x.png"]
    assert_png(elsewhere[0])
    assert plot_evolution(run, out=tmp_path / "plots", dpi=DPI) == [tmp_path / "plots" / "arch_evolution.png"]
    assert temporary_files(tmp_path) == []


def test_single_run_svg(tmp_path):
    run = tmp_path / "run"
    write_history(run, epochs=1)  # a single epoch still renders
    (path,) = plot_evolution(run, image_format="svg")
    assert path == run / "arch_evolution.svg"
    assert b"<svg" in path.read_bytes()[:1000]


def test_sweep_writes_every_run_and_an_overview(tmp_path):
    sweep = tmp_path / "sweep"
    write_history(sweep / "0", epochs=3)
    write_history(sweep / "1", epochs=5, shift=1.0)
    (sweep / "1" / ".hydra").mkdir()  # other content of a run directory is ignored
    written = plot_evolution(sweep, dpi=DPI)
    assert written == [
        sweep / "0" / "arch_evolution.png",
        sweep / "1" / "arch_evolution.png",
        sweep / "arch_evolution_sweep.png",
    ]
    for path in written:
        assert_png(path)
    assert temporary_files(tmp_path) == []


def test_cli_prints_the_paths_written(tmp_path):
    sweep = tmp_path / "sweep"
    write_history(sweep / "seed=0", epochs=2)
    write_history(sweep / "seed=1", epochs=2)
    result = run_cli(f"run_dir={sweep}", f"dpi={DPI}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(sweep / "seed=0" / "arch_evolution.png"),
        str(sweep / "seed=1" / "arch_evolution.png"),
        str(sweep / "arch_evolution_sweep.png"),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep"]  # no outputs/ or log file


# ---- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "empty history"),
        ("\n\n", "empty history"),
        ("{not json\n", "arch_history.jsonl:2: not valid JSON"),
        ('{"epoch": 1, "field_of_view": 3}\n', "arch_history.jsonl:2: missing field 'branches'"),
        ('{"epoch": "x", "field_of_view": 3, "branches": {}}\n', "arch_history.jsonl:2: field 'epoch'"),
        ("[1, 2]\n", "arch_history.jsonl:2: expected a JSON object"),
        (
            '{"epoch": 1, "field_of_view": 3, "branches": {"block4.b1": {"rates": [1, 2], "probs": [1.0]}}}\n',
            "branches['block4.b1']: 1 probs for 2 rates",
        ),
        (
            '{"epoch": 1, "field_of_view": 3, "branches": {"block4.b1": {"rates": [1, 2], "probs": [0.5, 0.5]}}}\n',
            "arch_history.jsonl:2: branches['block4.b1']: missing field 'choice'",
        ),
        (history_line(1, rates={"block4.b1": [1, 3]}) + "\n", "has rates [1, 3], earlier lines have [1, 2]"),
    ],
)
def test_bad_history_names_file_and_line(tmp_path, content, fragment):
    run = tmp_path / "run"
    run.mkdir()
    first = history_line(0) + "\n" if content.strip() else ""
    (run / "arch_history.jsonl").write_text(first + content)
    with pytest.raises(UserError, match=r"arch_history\.jsonl") as caught:
        plot_evolution(run, dpi=DPI)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
    assert list(run.iterdir()) == [run / "arch_history.jsonl"]  # nothing written


def test_missing_run_dir(tmp_path):
    with pytest.raises(UserError, match="nope: no such directory"):
        plot_evolution(tmp_path / "nope")


def test_directory_without_history(tmp_path):
    (tmp_path / "empty_sweep" / "0").mkdir(parents=True)
    with pytest.raises(
        UserError, match=r"no arch_history\.jsonl in this directory or below it \(expected a search"
    ):
        plot_evolution(tmp_path / "empty_sweep")


def test_broken_run_in_a_sweep_writes_nothing(tmp_path):
    write_history(tmp_path / "0")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "arch_history.jsonl").write_text(history_line(0) + "\n{\n")
    with pytest.raises(UserError, match=r"1/arch_history\.jsonl:2: not valid JSON"):
        plot_evolution(tmp_path, dpi=DPI)
    assert not list(tmp_path.rglob("*.png"))


def test_out_is_refused_for_a_sweep(tmp_path):
    write_history(tmp_path / "0", epochs=1)
    with pytest.raises(UserError, match=r"out=x\.png: only for a single run"):
        plot_evolution(tmp_path, out="x.png")


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"dpi": 0}, "dpi=0"), ({"image_format": "jpg"}, "format=jpg")]
)
def test_bad_options(tmp_path, kwargs, fragment):
    write_history(tmp_path, epochs=1)
    with pytest.raises(UserError, match=fragment):
        plot_evolution(tmp_path, **kwargs)


def test_cli_error_is_one_line_with_exit_2(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "arch_history.jsonl").write_text("")
    result = run_cli(f"run_dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dilnas-plot: error: "), result.stderr
    assert "empty history" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
