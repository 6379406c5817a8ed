"""Figures of a search's architecture over epochs: what ``dilnas-plot`` draws.

``run_figure`` (``render_run``: its image file) draws one run: a small heat map per searchable branch, in
block order (x: epoch, y: candidate rate, colour: the probability relative to uniform, one scale and one
colour bar for branches of any size, ``dilnas.train.arch_image.relative_to_uniform``), titled in words
("block 4, branch 1: rate 2, p=0.52"), the choice of each epoch as a thin red line, the derived rate (the
run's arch.json, else the last epoch's choice) boxed in red at the last epoch, the weight warm-up hatched
(``ArchHistory.warmup_through``), and a last panel with the network's field of view; "(running)" in the
title while a search still writes the run.
``sweep_figure`` (``render_sweep``) compares the runs of a sweep: a panel per branch with each run's expected
rate and a dot at its derived rate, the runs named by the Hydra overrides that differ between them. Both size
the figure from the number of branches (four panels a row), so the 13 branches of ``regseg_exp48`` (16 rates
each) stay legible. ``plot_evolution`` is what ``dilnas-plot`` calls; the ``out`` file's suffix picks the
format. Rendering uses ``matplotlib.figure.Figure`` directly, never pyplot's global state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from dilnas.analysis.search_history import (
    ArchHistory,
    BranchHistory,
    find_histories,
    job_labels,
    load_history,
)
from dilnas.spec.settings import parse_choice
from dilnas.spec.tool_options import PlotFormat
from dilnas.train.arch_image import (
    CHOICE_COLOR,
    RELATIVE_COLORMAP,
    RELATIVE_SPAN,
    branch_label,
    in_block_order,
    label_relative_colorbar,
    relative_to_uniform,
)
from dilnas.train.run_dir import ARCH_HISTORY, RunDir
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write

RUN_PLOT_STEM = "arch_evolution"
SWEEP_PLOT_STEM = "arch_evolution_sweep"
MAX_DPI = 1000
PANEL_SIZE = (3.4, 2.5)  # inches per panel: 16 rate labels fit its height
MARKERS_UP_TO = 30  # epochs; beyond that markers only clutter the lines
LABEL_EVERY_RATE_UP_TO = 10  # candidates; more get a label on every other row
EVERY_EPOCH_TICKED_UP_TO = 12
# The warm-up: grey hatching over a veil of white at this opacity, so the cells below still show.
WARMUP_HATCH, WARMUP_HATCH_COLOR, WARMUP_VEIL = "///", "0.35", 0.35


# ---- layout --------------------------------------------------------------------------------------
def _columns(panels: int) -> int:
    """Four columns up to 16 panels (13 branches and the field of view: a 4 x 4 grid), then five."""
    return min(panels, 4 if panels <= 16 else 5)


def _panel_grid(count: int, extra_width: float = 0.0) -> tuple[Figure, list[Axes]]:
    columns = _columns(count)
    rows = math.ceil(count / columns)
    figsize = (PANEL_SIZE[0] * columns + extra_width, PANEL_SIZE[1] * rows + 1.1)
    figure = Figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    for ax in axes[:count]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    return figure, axes[:count]


def _marker(points: int) -> str | None:
    return "o" if points <= MARKERS_UP_TO else None


def _cell_edges(epochs: Sequence[int]) -> np.ndarray:
    """Edges of one column per epoch, half-way between recorded epochs (a gap widens its neighbours)."""
    centres = np.asarray(epochs, dtype=float)
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middles = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[centres[0] - 0.5], middles, [centres[-1] + 0.5]])


def _shade_warmup(ax: Axes, first_epoch: int, warmup_through: int | None) -> None:
    if warmup_through is not None:
        ax.axvspan(
            first_epoch - 0.5,
            warmup_through + 0.5,
            facecolor="white",
            alpha=WARMUP_VEIL,
            hatch=WARMUP_HATCH,
            edgecolor=WARMUP_HATCH_COLOR,
            linewidth=0,
        )


def _to_bytes(figure: Figure, dpi: int, image_format: str) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format=image_format, dpi=dpi)
    return buffer.getvalue()


# ---- one run -------------------------------------------------------------------------------------
def _draw_heat_map(ax: Axes, branch: BranchHistory, warmup_through: int | None) -> QuadMesh:
    """The branch's probabilities as cells (rows: candidates, in order, evenly spaced even when the rates
    are not); returns the colour mesh for the colour bar."""
    edges = _cell_edges(branch.epochs)
    rows = np.arange(len(branch.rates) + 1) - 0.5
    matrix = np.stack([relative_to_uniform(probs) for probs in branch.probs]).T  # [candidate][epoch]
    mesh = ax.pcolormesh(edges, rows, matrix, cmap=RELATIVE_COLORMAP, vmin=-RELATIVE_SPAN, vmax=RELATIVE_SPAN)
    choice_rows = [branch.rates.index(choice) for choice in branch.choices]
    ax.plot(branch.epochs, choice_rows, color=CHOICE_COLOR, linewidth=0.9, drawstyle="steps-mid")
    final_row = branch.rates.index(branch.final_choice)
    ax.add_patch(
        Rectangle(
            (edges[-2], final_row - 0.5),
            edges[-1] - edges[-2],
            1,
            fill=False,
            edgecolor=CHOICE_COLOR,
            linewidth=1.6,
            clip_on=False,
        )
    )
    _shade_warmup(ax, branch.epochs[0], warmup_through)
    # Every other label from the top down when there are many: the largest rate stays labelled.
    step = 1 if len(branch.rates) <= LABEL_EVERY_RATE_UP_TO else 2
    last = len(branch.rates) - 1
    ax.set_yticks(range(len(branch.rates)))
    ax.set_yticklabels(
        [str(rate) if (last - index) % step == 0 else "" for index, rate in enumerate(branch.rates)]
    )
    ax.set_ylim(rows[0], rows[-1])
    title = f"{branch_label(branch.key)}: rate {branch.final_choice}, p={branch.final_prob:.2f}"
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("rate", fontsize=8)
    return mesh


def _draw_field_of_view(ax: Axes, epochs: Sequence[int], field_of_view: Sequence[float], **style) -> None:
    ax.plot(epochs, field_of_view, marker=_marker(len(epochs)), markersize=3, **style)
    ax.set_title("field of view", fontsize=9)
    ax.set_ylabel("pixels", fontsize=8)
    ax.grid(True, alpha=0.3)


def _epoch_axes(axes: Sequence[Axes], epochs: Sequence[int]) -> None:
    """The same epoch range in every panel, every epoch ticked when there are few, and 'epoch' under the
    lowest panel of each column only (the grid shares the meaning)."""
    edges = _cell_edges(sorted(epochs))
    columns = _columns(len(axes))
    for index, ax in enumerate(axes):
        ax.set_xlim(edges[0], edges[-1])
        if len(epochs) <= EVERY_EPOCH_TICKED_UP_TO:
            ax.set_xticks(sorted(epochs))
        if index + columns >= len(axes):
            ax.set_xlabel("epoch", fontsize=8)


def render_run(
    history: ArchHistory, *, title: str | None = None, dpi: int = 120, image_format: str = "png"
) -> bytes:
    """One run as an image file's bytes (see ``run_figure``)."""
    return _to_bytes(run_figure(history, title=title), dpi, image_format)


def run_figure(history: ArchHistory, *, title: str | None = None) -> Figure:
    """One run: a heat map per branch (block order), then the field of view; see the module docstring."""
    branches = list(history.branches.values())
    figure, axes = _panel_grid(len(branches) + 1, extra_width=0.8)
    meshes = [
        _draw_heat_map(ax, branch, history.warmup_through) for ax, branch in zip(axes, branches, strict=False)
    ]
    fov_ax = axes[-1]
    _draw_field_of_view(fov_ax, history.epochs, history.field_of_view, color="black")
    _shade_warmup(fov_ax, history.epochs[0], history.warmup_through)
    _epoch_axes(axes, history.epochs)
    if meshes:
        rows = math.ceil(len(axes) / _columns(len(axes)))
        colorbar = figure.colorbar(meshes[0], ax=axes, shrink=0.9 if rows == 1 else 0.6, aspect=30, pad=0.01)
        label_relative_colorbar(colorbar, fontsize=9)
    key = [
        Line2D([], [], color=CHOICE_COLOR, linewidth=0.9, label="choice per epoch"),
        Patch(
            fill=False,
            edgecolor=CHOICE_COLOR,
            linewidth=1.6,
            label="derived rate (arch.json, else last epoch)",
        ),
    ]
    if history.warmup_through is not None:
        key.append(
            Patch(facecolor="0.85", hatch=WARMUP_HATCH, edgecolor=WARMUP_HATCH_COLOR, label="weight warm-up")
        )
    figure.legend(handles=key, loc="outside lower center", ncol=len(key), fontsize="small", frameon=False)
    heading = title or str(history.path.parent)
    final_fov = history.field_of_view[-1]
    running = " (running)" if RunDir(history.path.parent).is_being_written() else ""
    figure.suptitle(
        f"{heading}{running}: epoch {history.epochs[-1]}, field of view {final_fov:g} px", fontsize=11
    )
    return figure


# ---- a sweep -------------------------------------------------------------------------------------
def render_sweep(
    runs: Sequence[tuple[str, ArchHistory]],
    *,
    title: str | None = None,
    dpi: int = 120,
    image_format: str = "png",
) -> bytes:
    """Several runs as an image file's bytes (see ``sweep_figure``)."""
    return _to_bytes(sweep_figure(runs, title=title), dpi, image_format)


def sweep_figure(runs: Sequence[tuple[str, ArchHistory]], *, title: str | None = None) -> Figure:
    """Several (label, history) runs: a panel per branch in block order (each run's expected rate, a dot at
    its derived rate), then each run's field of view; one legend of the labels below."""
    keys = in_block_order(key for _, history in runs for key in history.branches)
    figure, axes = _panel_grid(len(keys) + 1)
    palette = colormaps["tab10" if len(runs) <= 10 else "tab20"]
    colors = [palette(index % palette.N) for index in range(len(runs))]
    # The warm-up is hatched when every run has the same one (the usual seed sweep).
    warmups = {history.warmup_through for _, history in runs}
    warmup_through = warmups.pop() if len(warmups) == 1 else None
    first_epoch = min(history.epochs[0] for _, history in runs)
    for ax, key in zip(axes, keys, strict=False):
        rates: set[int] = set()
        for color, (_, history) in zip(colors, runs, strict=True):
            branch = history.branches.get(key)
            if branch is None:
                continue
            rates.update(branch.rates)
            ax.plot(branch.epochs, branch.expected, color=color, linewidth=1.2, alpha=0.9)
            ax.plot(branch.epochs[-1], branch.final_choice, "o", color=color, markersize=4, clip_on=False)
        ax.set_title(branch_label(key), fontsize=9)
        ax.set_ylabel("rate", fontsize=8)
        ax.set_ylim(min(rates) - 0.5, max(rates) + 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.grid(True, alpha=0.3)
        _shade_warmup(ax, first_epoch, warmup_through)
    for color, (_, history) in zip(colors, runs, strict=True):
        _draw_field_of_view(axes[-1], history.epochs, history.field_of_view, color=color)
    _shade_warmup(axes[-1], first_epoch, warmup_through)
    _epoch_axes(axes, sorted({epoch for _, history in runs for epoch in history.epochs}))
    handles = [
        Line2D([], [], color=color, label=label) for color, (label, _) in zip(colors, runs, strict=True)
    ]
    handles.append(Line2D([], [], color="0.3", marker="o", linestyle="", label="derived rate"))
    columns = min(len(handles), 5 if max(len(label) for label, _ in runs) <= 24 else 3)
    figure.legend(handles=handles, loc="outside lower center", ncol=columns, fontsize="small", frameon=False)
    figure.suptitle(title or f"{len(runs)} runs: expected dilation rate per branch", fontsize=11)
    return figure


# ---- the command ---------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def _image_target(out: str | os.PathLike | None, image_format: PlotFormat) -> tuple[Path | None, PlotFormat]:
    """(file or folder to write, format): a file's suffix picks the format, ``format=`` serves the rest."""
    if out is None or Path(out).is_dir():
        return (Path(out) if out is not None else None), image_format
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in {member.value for member in PlotFormat}:
        allowed = ", ".join(f".{member.value}" for member in PlotFormat)
        found = f"suffix {Path(out).suffix!r}" if suffix else "no suffix"
        raise UserError(f"out={out}: {found}; the suffix picks the image format, expected {allowed}")
    return Path(out), PlotFormat(suffix)


def plot_evolution(
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    dpi: int = 120,
    image_format: PlotFormat = PlotFormat.png,
) -> list[Path]:
    """Render a run, or every run of a sweep plus an overview; return the paths written.

    ``run_dir`` holding ``arch_history.jsonl`` (or naming that file) is a single run, written to ``out``
    (a file whose suffix, .png, .svg or .pdf, picks the format; or an existing folder) or
    ``<run>/arch_evolution.<format>``. Any other directory is a sweep: each ``arch_history.jsonl`` below it
    gives ``<run>/arch_evolution.<format>``, and ``<sweep>/arch_evolution_sweep.<format>`` compares them.
    """
    image_format = parse_choice(PlotFormat, image_format, "format")
    if not 1 <= dpi <= MAX_DPI:
        raise UserError(f"dpi={dpi}: expected an integer from 1 to {MAX_DPI}")
    root = Path(run_dir)
    if root.is_file() and root.name == ARCH_HISTORY:
        root = root.parent
    if not root.is_dir():
        raise UserError(f"run_dir={run_dir}: no such directory")

    if (root / ARCH_HISTORY).is_file():
        target, image_format = _image_target(out, image_format)
        default_name = f"{RUN_PLOT_STEM}.{image_format.value}"
        if target is None:
            target = root / default_name
        elif target.is_dir():
            target = target / default_name
        history = load_history(root / ARCH_HISTORY)
        return [_write(target, render_run(history, dpi=dpi, image_format=image_format.value))]

    suffix = f".{image_format.value}"
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
    histories = [load_history(path) for path in paths]
    labels = job_labels([path.parent for path in paths], root)
    sweep_name = root.resolve().name or str(root)
    written = []
    for path, label, history in zip(paths, labels, histories, strict=True):
        folder = path.parent.relative_to(root).as_posix()
        heading = f"{sweep_name}/{folder}" + (f" ({label})" if label != folder else "")
        image = render_run(history, title=heading, dpi=dpi, image_format=image_format.value)
        written.append(_write(path.parent / f"{RUN_PLOT_STEM}{suffix}", image))
    overview = render_sweep(
        list(zip(labels, histories, strict=True)),
        title=f"{sweep_name}: expected dilation rate of {len(histories)} runs",
        dpi=dpi,
        image_format=image_format.value,
    )
    written.append(_write(root / f"{SWEEP_PLOT_STEM}{suffix}", overview))
    return written
