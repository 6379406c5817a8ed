"""The evolution of a search's architecture: read ``arch_history.jsonl`` and render it.

The search loop appends one JSON object per epoch to ``<run>/arch_history.jsonl``::

    {"epoch": 3, "step": 120, "temperature": 1.0, "field_of_view": 303,
     "branches": {"block4.b1": {"rates": [1, 2], "probs": [0.4, 0.6], "choice": 2,
                                "expected": 1.6, "entropy": 0.673}, ...}}

``load_history`` validates it into an ``ArchHistory``; ``render_run`` draws one run (a panel per searchable
branch with the probability of each candidate rate, then the field of view); ``render_sweep`` compares runs
(a panel per branch with each run's expected rate). ``plot_evolution`` is what ``dilnas-plot`` calls.
Rendering uses ``matplotlib.figure.Figure`` directly, never pyplot's global state.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from dilnas.train.run_dir import ARCH_HISTORY
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write

RUN_PLOT_STEM = "arch_evolution"
SWEEP_PLOT_STEM = "arch_evolution_sweep"
IMAGE_FORMATS = ("png", "svg", "pdf")
MAX_DPI = 1000
PANEL_COLUMNS = 4
PANEL_SIZE = (4.0, 2.8)  # inches per panel
MARKERS_UP_TO = 30  # epochs; beyond that markers only clutter the lines


@dataclass
class BranchHistory:
    """One searchable branch over the epochs that recorded it (all lists run in parallel with ``epochs``)."""

    key: str
    rates: tuple[int, ...]
    epochs: list[int] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)  # [epoch][candidate]
    expected: list[float] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)

    @property
    def final_choice(self) -> int:
        return self.choices[-1]

    @property
    def final_prob(self) -> float:
        return self.probs[-1][self.rates.index(self.final_choice)]


@dataclass
class ArchHistory:
    """A validated ``arch_history.jsonl``: epochs in increasing order, branches in order of appearance."""

    path: Path
    epochs: list[int]
    field_of_view: list[float]
    branches: dict[str, BranchHistory]


# ---- reading -------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(record: dict, name: str, where: str, check, expected: str) -> Any:
    if name not in record:
        raise UserError(f"{where}: missing field {name!r}")
    value = record[name]
    if not check(value):
        raise UserError(f"{where}: field {name!r} is {json.dumps(value)}, expected {expected}")
    return value


def _parse_branch(key: str, entry: Any, where: str) -> tuple[tuple[int, ...], list[float], int, float]:
    where = f"{where}: branches[{key!r}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object with rates, probs, choice, expected")
    rates = _field(
        entry,
        "rates",
        where,
        lambda v: isinstance(v, list) and v and all(map(_is_int, v)),
        "a list of integers",
    )
    probs = _field(
        entry, "probs", where, lambda v: isinstance(v, list) and all(map(_is_number, v)), "numbers"
    )
    if len(probs) != len(rates):
        raise UserError(f"{where}: {len(probs)} probs for {len(rates)} rates {rates}")
    choice = _field(entry, "choice", where, _is_int, "an integer")
    if choice not in rates:
        raise UserError(f"{where}: choice {choice} is not one of the rates {rates}")
    expected = _field(entry, "expected", where, _is_number, "a number")
    return tuple(rates), [float(p) for p in probs], choice, float(expected)


def load_history(path: str | os.PathLike) -> ArchHistory:
    """Read and validate one ``arch_history.jsonl``.

    Blank lines are skipped. An epoch written twice (a resumed run repeats the epochs after its last
    checkpoint) keeps its last line. A branch must keep the same candidate rates throughout.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such history file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read history: {error}") from None

    rates_of: dict[str, tuple[int, ...]] = {}  # insertion order is the order of appearance
    by_epoch: dict[int, tuple[float, dict[str, tuple]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object with epoch, field_of_view, branches")
        epoch = _field(record, "epoch", where, _is_int, "an integer")
        fov = _field(record, "field_of_view", where, _is_number, "a number")
        entries = _field(record, "branches", where, lambda v: isinstance(v, dict), "an object")
        branches = {}
        for key, entry in entries.items():
            parsed = _parse_branch(key, entry, where)
            known = rates_of.setdefault(key, parsed[0])
            if parsed[0] != known:
                raise UserError(
                    f"{where}: branches[{key!r}] has rates {list(parsed[0])}, earlier lines have {list(known)}"
                )
            branches[key] = parsed
        by_epoch[epoch] = (float(fov), branches)
    if not by_epoch:
        raise UserError(f"{path}: empty history, no epoch recorded yet")

    epochs = sorted(by_epoch)
    history = ArchHistory(
        path=path,
        epochs=epochs,
        field_of_view=[by_epoch[epoch][0] for epoch in epochs],
        branches={key: BranchHistory(key=key, rates=rates) for key, rates in rates_of.items()},
    )
    for epoch in epochs:
        for key, (_, probs, choice, expected) in by_epoch[epoch][1].items():
            branch = history.branches[key]
            branch.epochs.append(epoch)
            branch.probs.append(probs)
            branch.choices.append(choice)
            branch.expected.append(expected)
    # A key seen only in a line that a later duplicate epoch replaced has no points left.
    history.branches = {key: branch for key, branch in history.branches.items() if branch.epochs}
    return history


def find_histories(directory: str | os.PathLike[str]) -> list[Path]:
    """Every ``arch_history.jsonl`` at or below ``directory``, sorted; symbolic links to folders are not followed."""
    found = [
        Path(root) / ARCH_HISTORY
        for root, _, files in os.walk(directory)
        if ARCH_HISTORY in files and (Path(root) / ARCH_HISTORY).is_file()
    ]
    return sorted(found)


# ---- rendering -----------------------------------------------------------------------------------
def _panel_grid(count: int) -> tuple[Figure, list[Axes]]:
    columns = min(PANEL_COLUMNS, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    for ax in axes[:count]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    return figure, axes[:count]


def _marker(points: int) -> str | None:
    return "o" if points <= MARKERS_UP_TO else None


def _to_bytes(figure: Figure, dpi: int, image_format: str) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format=image_format, dpi=dpi)
    return buffer.getvalue()


def _draw_field_of_view(ax: Axes, epochs: Sequence[int], field_of_view: Sequence[float], **style) -> None:
    ax.plot(epochs, field_of_view, marker=_marker(len(epochs)), markersize=3, **style)
    ax.set_title("field of view")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pixels")


def render_run(
    history: ArchHistory, *, title: str | None = None, dpi: int = 120, image_format: str = "png"
) -> bytes:
    """One run: a panel per branch (probability of each candidate rate), then the field of view."""
    branches = list(history.branches.values())
    figure, axes = _panel_grid(len(branches) + 1)
    # One colour per rate value, the same in every panel.
    all_rates = sorted({rate for branch in branches for rate in branch.rates})
    palette = colormaps["tab10" if len(all_rates) <= 10 else "tab20"]
    color_of = {rate: palette(index % palette.N) for index, rate in enumerate(all_rates)}
    for ax, branch in zip(axes, branches, strict=False):
        for index, rate in enumerate(branch.rates):
            ax.plot(
                branch.epochs,
                [probs[index] for probs in branch.probs],
                label=f"d{rate}",
                color=color_of[rate],
                marker=_marker(len(branch.epochs)),
                markersize=3,
            )
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{branch.key}: d{branch.final_choice} (p={branch.final_prob:.2f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("probability")
        ax.legend(fontsize="small", ncol=2 if len(branch.rates) > 4 else 1, loc="best")
    _draw_field_of_view(axes[-1], history.epochs, history.field_of_view, color="black")
    final_fov = history.field_of_view[-1]
    heading = title or str(history.path.parent)
    figure.suptitle(f"{heading}: epoch {history.epochs[-1]}, field of view {final_fov:g} px")
    return _to_bytes(figure, dpi, image_format)


def render_sweep(
    runs: Sequence[tuple[str, ArchHistory]],
    *,
    title: str | None = None,
    dpi: int = 120,
    image_format: str = "png",
) -> bytes:
    """Several runs: a panel per branch (each run's expected rate), then each run's field of view."""
    keys = list(dict.fromkeys(key for _, history in runs for key in history.branches))
    figure, axes = _panel_grid(len(keys) + 1)
    palette = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    colors = [palette(index % palette.N) for index in range(len(runs))]
    for ax, key in zip(axes, keys, strict=False):
        rates: set[int] = set()
        for color, (_, history) in zip(colors, runs, strict=True):
            branch = history.branches.get(key)
            if branch is None:
                continue
            rates.update(branch.rates)
            ax.plot(
                branch.epochs, branch.expected, color=color, marker=_marker(len(branch.epochs)), markersize=3
            )
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("expected rate")
        ax.set_ylim(min(rates) - 0.2, max(rates) + 0.2)
    for color, (_, history) in zip(colors, runs, strict=True):
        _draw_field_of_view(axes[-1], history.epochs, history.field_of_view, color=color)
    handles = [
        Line2D([], [], color=color, label=label) for color, (label, _) in zip(colors, runs, strict=True)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(runs), 4), fontsize="small")
    figure.suptitle(title or f"{len(runs)} runs: expected dilation rate per branch")
    return _to_bytes(figure, dpi, image_format)


# ---- the command ---------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def plot_evolution(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    dpi: int = 120,
    image_format: str = "png",
) -> list[Path]:
    """Render a run, or every run of a sweep plus an overview; return the paths written.

    ``run_dir`` holding ``arch_history.jsonl`` (or naming that file) is a single run, written to
    ``out`` (a file, or an existing folder) or ``<run>/arch_evolution.<format>``. Any other directory is
    a sweep: each ``arch_history.jsonl`` below it gives ``<run>/arch_evolution.<format>``, and
    ``<sweep>/arch_evolution_sweep.<format>`` compares them.
    """
    if image_format not in IMAGE_FORMATS:
        raise UserError(f"format={image_format}: expected one of {', '.join(IMAGE_FORMATS)}")
    if not 1 <= dpi <= MAX_DPI:
        raise UserError(f"dpi={dpi}: expected an integer from 1 to {MAX_DPI}")
    root = Path(run_dir)
    if root.is_file() and root.name == ARCH_HISTORY:
        root = root.parent
    if not root.is_dir():
        raise UserError(f"run_dir={run_dir}: no such directory")
    suffix = f".{image_format}"

    if (root / ARCH_HISTORY).is_file():
        target = Path(out) if out is not None else root / f"{RUN_PLOT_STEM}{suffix}"
        if target.is_dir():
            target = target / f"{RUN_PLOT_STEM}{suffix}"
        history = load_history(root / ARCH_HISTORY)
        return [_write(target, render_run(history, dpi=dpi, image_format=image_format))]

    if out is not None:
        raise UserError(
            f"out={out}: only for a single run; {root} is a sweep, whose images go to "
            f"<run>/{RUN_PLOT_STEM}{suffix} and {root / (SWEEP_PLOT_STEM + suffix)}"
        )
    paths = find_histories(root)
    if not paths:
        raise UserError(
            f"{root}: no {ARCH_HISTORY} in this directory or below it "
            "(expected a search run directory, or a sweep directory holding search runs)"
        )
    # Read everything first: a broken history stops the command before any image is written.
    runs = [(path.parent.relative_to(root).as_posix(), load_history(path)) for path in paths]
    sweep_name = root.resolve().name or str(root)
    written = []
    for label, history in runs:
        image = render_run(history, title=f"{sweep_name}/{label}", dpi=dpi, image_format=image_format)
        written.append(_write(history.path.parent / f"{RUN_PLOT_STEM}{suffix}", image))
    overview = render_sweep(
        runs,
        title=f"{sweep_name}: expected dilation rate of {len(runs)} runs",
        dpi=dpi,
        image_format=image_format,
    )
    written.append(_write(root / f"{SWEEP_PLOT_STEM}{suffix}", overview))
    return written
