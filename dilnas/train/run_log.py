"""Logging twice: every scalar goes to TensorBoard and to ``metrics.jsonl``, so runs can be re-plotted and
summarised without TensorBoard's reader. Only rank 0 writes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dilnas.train.run_dir import METRICS, RunDir
from dilnas.utils.files import atomic_write_text

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class RunLogger:
    """TensorBoard under the run directory's ``tb/`` and JSON-lines files in it (one object per record).

    Nothing touches the disk before the first record, so a run that fails while it is being set up leaves
    no log files behind."""

    def __init__(self, run_dir: RunDir, enabled: bool = True, jsonl: Sequence[str] = (METRICS,)):
        self.enabled = enabled
        self.run_dir = run_dir
        self.jsonl = tuple(jsonl)
        self._writer: SummaryWriter | None = None
        self._files: dict[str, IO[str]] = {}

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, and rank 0 only

            self._writer = SummaryWriter(log_dir=str(self.run_dir.tensorboard))
        return self._writer

    def _file(self, name: str) -> IO[str]:
        if name not in self.jsonl:
            raise KeyError(f"{name}: not one of this logger's files {self.jsonl}")
        if name not in self._files:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.run_dir.jsonl(name), "a", encoding="utf-8")  # noqa: SIM115  (closed in close, rewind)
            self._files[name] = handle
        return self._files[name]

    def log(self, step: int, scalars: dict[str, float], **extra: Any) -> None:
        """Write ``scalars`` (tag -> value) at ``step``; ``extra`` fields go to the JSON line only."""
        if not self.enabled:
            return
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.record(METRICS, {"step": step, "time": time.time(), **extra, **scalars})

    def record(self, name: str, record: dict[str, Any]) -> None:
        """One JSON line (with a ``step`` field) into ``<run_dir>/<name>``, without TensorBoard."""
        if self.enabled:
            handle = self._file(name)
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()

    def add_image(self, tag: str, image: Any, step: int) -> None:
        """An (H, W, 3) uint8 image."""
        if self.enabled:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def rewind(self, max_step: int) -> None:
        """Forget JSON records after ``max_step``: a resumed run logs again the steps that its killed
        predecessor logged after its last checkpoint, and they must not appear twice."""
        if not self.enabled:
            return
        for name in self.jsonl:
            handle = self._files.pop(name, None)
            if handle is not None:
                handle.close()
            truncate_jsonl(self.run_dir.jsonl(name), max_step)

    def flush(self) -> None:
        """Push buffered TensorBoard events to disk (the JSON lines are flushed as they are written)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self.enabled = False


def truncate_jsonl(path: str | os.PathLike, max_step: int) -> None:
    """Drop the records of a JSON-lines file that are after ``max_step`` (atomically)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["step"] <= max_step
    ]
    atomic_write_text(path, "".join(line + "\n" for line in kept))
