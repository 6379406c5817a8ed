"""The probability matrix of the searchable branches as a small labelled image, for TensorBoard.

The search loop draws it every epoch (``arch/probabilities``): one row per branch in block order, one column
per rate 1..max, colour each probability relative to uniform (``relative_to_uniform``: white where a rate
is as likely as every other, teal above, brown below, on a log scale from 1/8 to 8 times, with a colour bar;
a near-uniform branch of 16 rates shows its trend, where a 0..1 scale painted it one dark colour), the
current choice of each branch outlined in red, and grey hatching where a rate is not a candidate of that branch (so "cannot take
this rate" never looks like "probability 0"). ``branch_sort_key`` is the block order that ``dilnas-plot``
uses too.

Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas directly, never pyplot's global state, at a
low dpi and laid out by hand. ``ProbabilityImage`` keeps its figure between epochs and only updates the cells
and outlines, so an epoch's image costs a redraw (tens of milliseconds), not a new figure. matplotlib is
imported on the first image: ``dilnas-search --help`` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dilnas.spec.space import parse_branch_key

if TYPE_CHECKING:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import Colorbar
    from matplotlib.image import AxesImage
    from matplotlib.patches import Rectangle

RELATIVE_COLORMAP = "BrBG"  # diverging: brown below uniform, white at uniform, teal above; dilnas-plot too
# log2 of (probability x candidates) shown: 1/8 to 8 times uniform; beyond, the end colours
RELATIVE_SPAN = 3.0
RELATIVE_LABEL = "probability / uniform"
NOT_CANDIDATE_COLOR = "#d9d9d9"
CHOICE_COLOR = "#ff3b30"  # stands out against every colour of the map
IMAGE_DPI = 120  # 13 branches x 16 rates: about 730 x 400 pixels, the labels readable at TensorBoard's size
# Inches: room for the branch keys on the left and the colour bar on the right, and the size of one cell.
MARGINS = {"left": 0.85, "right": 1.05, "bottom": 0.45, "top": 0.1}
CELL = (0.28, 0.22)
MIN_CELLS_SIZE = (2.2, 1.3)  # a space of two small branches still gets a readable colour bar and label

Layout = tuple[tuple[str, tuple[int, ...]], ...]  # (branch key, candidate rates) per row


def relative_to_uniform(probs: Sequence[float]) -> np.ndarray:
    """log2 of each probability over the uniform one (1 / the number of candidates): 0 as likely as every
    other rate, +1 twice as likely, -1 half; clipped to +-``RELATIVE_SPAN`` (a probability of 0 at the low
    end)."""
    values = np.asarray(probs, dtype=float) * len(probs)
    with np.errstate(divide="ignore"):
        return np.clip(np.log2(values), -RELATIVE_SPAN, RELATIVE_SPAN)


def label_relative_colorbar(colorbar: Colorbar, fontsize: float) -> None:
    """Ticks of a ``relative_to_uniform`` colour bar as factors: 1/8x ... uniform ... 8x."""
    span = int(RELATIVE_SPAN)
    ticks = list(range(-span, span + 1))
    names = [f"1/{2**-tick}x" if tick < 0 else ("uniform" if tick == 0 else f"{2**tick}x") for tick in ticks]
    colorbar.set_ticks(ticks, labels=names)
    colorbar.set_label(RELATIVE_LABEL, fontsize=fontsize)
    colorbar.ax.tick_params(labelsize=fontsize - 1)


def branch_label(key: str) -> str:
    """``block4.b1`` as words, ``block 4, branch 1``; any other key as it is."""
    try:
        block, branch = parse_branch_key(key)
    except ValueError:
        return key
    return f"block {block}, branch {branch}"


def branch_sort_key(key: str) -> tuple[int, int, str]:
    """Order branch keys by block, then branch (``block5.b1`` before ``block10.b0``); a key that is not
    ``block<i>.b<j>`` goes after all of them, alphabetically."""
    try:
        block, branch = parse_branch_key(key)
    except ValueError:
        return (1 << 30, 0, key)
    return (block, branch, key)


def in_block_order(keys: Iterable[str]) -> list[str]:
    """``keys`` (without repeats) sorted by ``branch_sort_key``."""
    return sorted(dict.fromkeys(keys), key=branch_sort_key)


class ProbabilityImage:
    """Renders ``arch_history.jsonl``'s per-branch records (``rates``, ``probs``, ``choice``) to an (H, W, 3)
    uint8 image; the figure is kept while the branches and their candidates stay the same."""

    def __init__(self, dpi: int = IMAGE_DPI):
        self.dpi = dpi
        self._layout: Layout | None = None
        self._canvas: FigureCanvasAgg | None = None
        self._cells: AxesImage | None = None
        self._outlines: list[Rectangle] = []

    def __call__(self, branches: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
        keys = in_block_order(branches)
        layout = tuple((key, tuple(branches[key]["rates"])) for key in keys)
        if layout != self._layout:
            self._build(layout)
            self._layout = layout
        assert self._canvas is not None and self._cells is not None
        max_rate = max(max(rates) for _, rates in layout)
        # NaN marks the rates a branch cannot take: left transparent over the hatched background.
        matrix = np.full((len(keys), max_rate), np.nan)
        for row, key in enumerate(keys):
            branch = branches[key]
            relative = relative_to_uniform(branch["probs"])
            for rate, value in zip(branch["rates"], relative, strict=True):
                matrix[row, rate - 1] = value
            self._outlines[row].set_x(branch["choice"] - 1.5)
        self._cells.set_data(np.ma.masked_invalid(matrix))
        self._canvas.draw()
        return np.asarray(self._canvas.buffer_rgba())[..., :3].copy()

    def _build(self, layout: Layout) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        keys = [key for key, _ in layout]
        max_rate = max(max(rates) for _, rates in layout)
        cells_width = max(CELL[0] * max_rate, MIN_CELLS_SIZE[0])
        cells_height = max(CELL[1] * len(keys), MIN_CELLS_SIZE[1])
        width = MARGINS["left"] + cells_width + MARGINS["right"]
        height = MARGINS["bottom"] + cells_height + MARGINS["top"]
        figure = Figure(figsize=(width, height), dpi=self.dpi)
        self._canvas = FigureCanvasAgg(figure)
        # Laid out by hand (constrained layout would double the cost of every redraw).
        ax = figure.add_axes(
            (MARGINS["left"] / width, MARGINS["bottom"] / height, cells_width / width, cells_height / height)
        )
        colorbar_ax = figure.add_axes(
            (
                (MARGINS["left"] + cells_width + 0.12) / width,
                MARGINS["bottom"] / height,
                0.12 / width,
                cells_height / height,
            )
        )
        ax.patch.set_facecolor(NOT_CANDIDATE_COLOR)
        ax.patch.set_hatch("///")
        ax.patch.set_edgecolor("#9a9a9a")
        self._cells = ax.imshow(
            np.ma.masked_invalid(np.full((len(keys), max_rate), np.nan)),
            cmap=RELATIVE_COLORMAP,
            vmin=-RELATIVE_SPAN,
            vmax=RELATIVE_SPAN,
            aspect="auto",
            interpolation="nearest",
        )
        self._outlines = [
            Rectangle((-0.5, row - 0.5), 1, 1, fill=False, edgecolor=CHOICE_COLOR, linewidth=1.5)
            for row in range(len(keys))
        ]
        for outline in self._outlines:
            ax.add_patch(outline)
        ax.set_xticks(range(max_rate), [str(rate) for rate in range(1, max_rate + 1)], fontsize=8)
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.tick_params(length=0)
        ax.set_xlabel("dilation rate (red: choice)", fontsize=8)
        label_relative_colorbar(figure.colorbar(self._cells, cax=colorbar_ax), fontsize=8)


def probability_image(branches: Mapping[str, Mapping[str, Any]], dpi: int = IMAGE_DPI) -> np.ndarray:
    """One image of ``branches`` (see ``ProbabilityImage``); a loop drawing every epoch keeps a renderer."""
    return ProbabilityImage(dpi)(branches)
