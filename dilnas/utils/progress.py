"""Progress bars for long work (training steps, evaluation batches, candidates scored): tqdm on the terminal,
nothing elsewhere.

A bar shows only when standard error is a terminal (tqdm's ``disable=None``), so logs, CI and captured output
stay free of carriage returns; the log lines of the run (``dilnas.train.trainer``) carry the same progress
there. Its rate follows the recent steps (exponential smoothing), not the whole run's average, so a change of
the machine's load shows within a few updates. ``DILNAS_PROGRESS=0`` turns the bars off on a terminal too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

SMOOTHING = 0.1  # weight of the latest rate in tqdm's moving average (0: whole-run average, 1: latest only)
OFF = "DILNAS_PROGRESS"


def progress_bar(
    total: int, description: str, initial: int = 0, unit: str = "it", enabled: bool = True
) -> tqdm:
    """A bar over ``total`` units starting at ``initial``; a silent one unless ``enabled`` and standard error
    is a terminal (and ``DILNAS_PROGRESS`` is not ``0``)."""
    off = not enabled or os.environ.get(OFF, "1") == "0"
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=True if off else None,  # None: shown only on a terminal
        dynamic_ncols=True,
        smoothing=SMOOTHING,
        leave=False,
    )


@contextlib.contextmanager
def bars_beside_logging(bar: tqdm) -> Iterator[None]:
    """While ``bar`` shows, route the console's log lines through tqdm, so a log line never cuts a bar (the
    root logger's handlers, which Hydra's commands log through, and the ``dilnas`` logger's own, which the
    Python API gives it)."""
    if bar.disable:
        yield
        return
    with logging_redirect_tqdm(loggers=[logging.getLogger(), logging.getLogger("dilnas")]):
        yield
