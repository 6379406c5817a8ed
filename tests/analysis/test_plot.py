"""dilnas-plot: arch_history.jsonl of a run or a sweep rendered to images, and its one-line errors; the
TensorBoard probability image of the search loop."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from dilnas.analysis.search_figures import plot_evolution, run_figure, sweep_figure
from dilnas.analysis.search_history import find_histories, job_labels, load_history
from dilnas.spec.space import load_space
from dilnas.train.arch_image import (
    RELATIVE_COLORMAP,
    RELATIVE_LABEL,
    ProbabilityImage,
    in_block_order,
    probability_image,
    relative_to_uniform,
)
from dilnas.train.distributed import DistInfo
from dilnas.train.run_dir import RunDir
from dilnas.utils.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIGNATURES = {"png": PNG_SIGNATURE, "pdf": b"%PDF-", "svg": b"<?xml"}
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


def write_history(
    run: Path, epochs: int = 4, shift: float = 0.0, rates: dict[str, list[int]] = BRANCH_RATES, first: int = 0
) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / "arch_history.jsonl"
    lines = [history_line(epoch, shift, rates) for epoch in range(first, first + epochs)]
    path.write_text("".join(line + "\n" for line in lines))
    return path


@functools.cache
def exp48_rates() -> dict[str, list[int]]:
    """The 13 searchable branches of the paper's space (up to 16 candidates each), listed in string order
    (block10 before block5), as a careless writer might."""
    space = load_space("regseg_exp48")
    return {branch.key: list(branch.candidates) for branch in sorted(space.branches, key=lambda b: b.key)}


def assert_renders(figure) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    assert buffer.getvalue().startswith(PNG_SIGNATURE)


def axes_titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()]


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


def test_find_histories_is_recursive_and_in_natural_order(tmp_path):
    for name in ("b/10", "b/2", "a", "b/0/nested", ".hydra"):
        write_history(tmp_path / name, epochs=1)
    found = [path.parent.relative_to(tmp_path).as_posix() for path in find_histories(tmp_path)]
    assert found == ["a", "b/0/nested", "b/2", "b/10"]


def test_warmup_from_config_else_from_uniform_probabilities(tmp_path):
    run = tmp_path / "run"
    # Epochs 1 and 2 uniform (shift=-epoch gives equal weights), then the logits move.
    lines = [history_line(1, shift=-1), history_line(2, shift=-2), history_line(3), history_line(4)]
    path = run / "arch_history.jsonl"
    run.mkdir()
    path.write_text("".join(line + "\n" for line in lines))
    assert load_history(path).warmup_through == 2  # no config.yaml: the leading uniform epochs
    (run / "config.yaml").write_text("search:\n  warmup_epochs: 3\n")
    assert load_history(path).warmup_through == 3  # the run's own setting wins
    (run / "config.yaml").write_text("search:\n  warmup_epochs: 0\n")
    assert load_history(path).warmup_through is None
    (run / "config.yaml").write_text("search: [unclosed\n")  # unreadable: inferred again
    assert load_history(path).warmup_through == 2
    (run / "config.yaml").unlink()
    write_history(run, epochs=3, first=1)  # moved from the first epoch: no warm-up
    assert load_history(path).warmup_through is None


def test_job_labels_are_the_overrides_that_differ(tmp_path):
    def job(name: str, *overrides: str) -> Path:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        return tmp_path / name

    jobs = [job("0", "seed=0", "search.space=regseg_exp48"), job("1", "seed=1", "search.space=regseg_exp48")]
    assert job_labels(jobs, tmp_path) == ["seed=0", "seed=1"]
    # Nothing differs (or no overrides recorded): the folder names.
    same = [job("2", "seed=0"), job("3", "seed=0"), tmp_path / "4"]
    assert job_labels(same, tmp_path) == ["2", "3", "4"]
    (tmp_path / "3" / ".hydra" / "overrides.yaml").write_text("seed: 1\n")
    with pytest.raises(UserError, match=r"3/\.hydra/overrides\.yaml: expected a YAML list of overrides"):
        job_labels(same, tmp_path)


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


# ---- the paper's space: 13 branches of up to 16 rates ---------------------------------------------
def test_branch_keys_sort_in_block_order():
    keys = ["block10.b1", "block5.b1", "block17.b0", "block5.b0", "stem", "block9.b1", "block5.b1"]
    assert in_block_order(keys) == ["block5.b0", "block5.b1", "block9.b1", "block10.b1", "block17.b0", "stem"]


EXP48_KEYS = [f"block{block}.b1" for block in range(5, 18)]
EXP48_LABELS = [f"block {block}, branch 1" for block in range(5, 18)]


def test_exp48_run_heat_maps_in_block_order(tmp_path):
    run = tmp_path / "run"
    write_history(run, epochs=5, rates=exp48_rates(), first=1)
    (run / "config.yaml").write_text("search:\n  warmup_epochs: 2\n")
    history = load_history(run / "arch_history.jsonl")
    assert list(history.branches) == EXP48_KEYS and history.warmup_through == 2
    figure = run_figure(history)
    titles = axes_titles(figure)
    assert [title.split(":")[0] for title in titles] == [*EXP48_LABELS, "field of view"]
    # The derived rate is named: history_line's probabilities grow with the rate, so the largest wins.
    assert titles[0].startswith("block 5, branch 1: rate 3, p=")
    assert titles[2].startswith("block 7, branch 1: rate 16, p=")
    assert "(running)" not in figure.get_suptitle()
    block7 = figure.axes[2]
    (cells,) = block7.collections
    assert cells.get_array().shape == (16, 5)  # y: candidate rate, x: epoch
    labels = [label.get_text() for label in block7.get_yticklabels()]
    assert labels[-1] == "16" and labels[-2] == "" and len(labels) == 16  # every other one: no overlap
    assert [ax.get_ylabel() for ax in figure.axes].count(RELATIVE_LABEL) == 1  # one shared colour bar
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["choice per epoch", "derived rate (arch.json, else last epoch)", "weight warm-up"]
    assert_renders(figure)


def test_exp48_sweep_labelled_by_overrides_in_block_order(tmp_path):
    runs = []
    for seed in (0, 1):
        run = tmp_path / str(seed)
        runs.append(write_history(run, epochs=3, shift=seed, rates=exp48_rates(), first=1).parent)
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- search.space=regseg_exp48\n")
    labels = job_labels(runs, tmp_path)
    figure = sweep_figure(
        [(label, load_history(run / "arch_history.jsonl")) for label, run in zip(labels, runs, strict=True)]
    )
    assert axes_titles(figure) == [*EXP48_LABELS, "field of view"]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["seed=0", "seed=1", "derived rate"]
    assert_renders(figure)


# ---- output format -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["figure.png", "figure.PDF", "figure.svg"])
def test_out_suffix_picks_the_format(tmp_path, name):
    run = tmp_path / "run"
    write_history(run, epochs=1)
    suffix = name.rsplit(".", 1)[1].lower()
    other = "png" if suffix == "svg" else "svg"  # format= loses to the suffix
    (path,) = plot_evolution(run, out=tmp_path / name, dpi=20, image_format=other)
    assert path == tmp_path / name
    data = path.read_bytes()
    assert data.startswith(SIGNATURES[suffix])
    if suffix == "svg":
        assert b"<svg" in data[:2000]


@pytest.mark.parametrize(("name", "found"), [("figure.jpg", "suffix '.jpg'"), ("figure", "no suffix")])
def test_unknown_out_suffix_is_a_one_line_error(tmp_path, name, found):
    write_history(tmp_path / "run", epochs=1)
    with pytest.raises(UserError) as caught:
        plot_evolution(tmp_path / "run", out=tmp_path / name)
    message = str(caught.value)
    assert message == (
        f"out={tmp_path / name}: {found}; the suffix picks the image format, expected .png, .svg, .pdf"
    )
    assert not (tmp_path / name).exists()


# ---- the TensorBoard image -----------------------------------------------------------------------
def tensorboard_branches(block4_rates: list[int]) -> dict:
    """block4.b1 split between its first and last rates (the others at probability 0), block5.b1 undecided."""
    block4_probs = [0.5] + [0.0] * (len(block4_rates) - 2) + [0.5]
    return {
        "block5.b1": {"rates": [1, 2, 3], "probs": [0.2, 0.3, 0.5], "choice": 3},
        "block4.b1": {"rates": block4_rates, "probs": block4_probs, "choice": 1},
    }


def test_probability_image_shape_and_non_candidates():
    image = probability_image(
        {key: {"rates": r, "probs": [1 / len(r)] * len(r), "choice": 1} for key, r in exp48_rates().items()}
    )
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 200 <= image.shape[0] < image.shape[1] <= 800  # 13 labelled rows, 16 columns and a colour bar
    # Rate 2 of block4.b1: a candidate at probability 0 (the low end of the colour map), then not a candidate
    # at all: hatched grey where the low end was. (Its other cells change too: relative to uniform, 1 of 2
    # candidates is not 1 of 3.)
    candidate = probability_image(tensorboard_branches([1, 2, 3]))
    not_candidate = probability_image(tensorboard_branches([1, 3]))
    lowest = np.array(colormaps[RELATIVE_COLORMAP](0.0)[:3]) * 255  # dark brown
    zero_cell = (np.abs(candidate.astype(float) - lowest) < 3).all(axis=-1)
    zero_cell[:, int(candidate.shape[1] * 0.8) :] = False  # the colour bar's low end is not a cell
    assert zero_cell.sum() > 100
    grey = not_candidate[zero_cell].astype(int)
    assert ((grey.max(axis=1) - grey.min(axis=1)) < 10).mean() > 0.95  # grey (hatched), no hue
    assert grey.mean() > 120


def test_colour_is_relative_to_uniform_so_a_near_uniform_branch_shows_its_trend():
    # 16 candidates around 1/16: on a 0..1 scale all one colour; relative to uniform, a twice-as-likely rate
    # sits one step above the middle and a half-as-likely one step below.
    probs = [2 / 16, 0.5 / 16] + [(1 - 2.5 / 16) / 14] * 14
    relative = relative_to_uniform(probs)
    assert relative[0] == pytest.approx(1.0) and relative[1] == pytest.approx(-1.0)
    assert abs(relative[2]) < 0.1  # the rest share what is left, near uniform
    assert relative_to_uniform([1.0, 0.0]).tolist() == [1.0, -3.0]  # clipped: 0 at the low end
    assert relative_to_uniform([0.5, 0.5]).tolist() == [0.0, 0.0]


def test_a_run_that_is_being_written_is_titled_running(tmp_path):
    run = tmp_path / "run"
    write_history(run, epochs=2)
    assert "(running)" not in run_figure(load_history(run / "arch_history.jsonl")).get_suptitle()
    writer = RunDir(run)
    writer.acquire(DistInfo())  # a search holds the lock while it runs
    try:
        # Another process looks at it (a lock of this process would not block its own probe).
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from dilnas.analysis.search_figures import run_figure; "
                "from dilnas.analysis.search_history import load_history; "
                "print(run_figure(load_history(sys.argv[1])).get_suptitle())",
                str(run / "arch_history.jsonl"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{run} (running): epoch " in probe.stdout
    finally:
        writer.release()
    assert "(running)" not in run_figure(load_history(run / "arch_history.jsonl")).get_suptitle()


def test_probability_image_renderer_sorts_rows_and_rebuilds_for_new_branches():
    renderer = ProbabilityImage()
    first = renderer(tensorboard_branches([1, 2, 3]))
    swapped = dict(reversed(tensorboard_branches([1, 2, 3]).items()))
    assert np.array_equal(renderer(swapped), first)  # rows in block order, whatever the dict order
    other = tensorboard_branches([1, 3])
    assert np.array_equal(renderer(other), probability_image(other))  # a new layout: a new figure


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
    ("kwargs", "fragment"), [({"dpi": 0}, "dpi=0"), ({"image_format": "jpg"}, "format='jpg'")]
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


def test_the_derived_rate_is_the_one_the_search_wrote(tmp_path):
    # A search that kept another shortlisted architecture than its last epoch's choice (held-out selection):
    # the figure marks what arch.json holds.
    from dilnas.spec.arch import save_arch
    from dilnas.spec.options import DeriveRule
    from dilnas.train.selection import ScoredArch, Selection, selected_arch

    space = load_space("synthetic_tiny")
    rates = {b.key: list(b.candidates) for b in space.branches}
    path = write_history(tmp_path / "run", rates=rates)
    assert [b.final_choice for b in load_history(path).branches.values()] == [2, 6]  # the last epoch's
    probs = [[1 / len(r)] * len(r) for r in rates.values()]
    selection = Selection((ScoredArch((2, 6), 50.0), ScoredArch((1, 3), 60.0)))
    save_arch(
        selected_arch(space, probs, DeriveRule.argmax, 2, {}, selection), tmp_path / "run" / "arch.json"
    )
    history = load_history(path)
    assert [b.final_choice for b in history.branches.values()] == [1, 3]
    assert [b.choices[-1] for b in history.branches.values()] == [2, 6]
