"""Logging twice: every scalar goes to TensorBoard and to ``metrics.jsonl``, so runs can be re-plotted and
summarised without TensorBoard's reader. Only rank 0 writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dilnas.fileio import atomic_write_text


class RunLogger:
    """TensorBoard scalars under ``<run_dir>/tb`` and one JSON object per record in ``<run_dir>/<jsonl>``."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, jsonl: str = "metrics.jsonl"):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._writer = None
        self._jsonl = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, and rank 0 only

            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
            self._jsonl = open(self.run_dir / jsonl, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def log(self, step: int, scalars: dict[str, float], **extra: Any) -> None:
        """Write ``scalars`` (tag -> value) at ``step``; ``extra`` fields go to the JSON line only."""
        if not self.enabled:
            return
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)
        record = {"step": step, "time": time.time(), **extra, **scalars}
        self._jsonl.write(json.dumps(record, sort_keys=True) + "\n")
        self._jsonl.flush()

    def rewind(self, max_step: int) -> None:
        """Forget JSON records after ``max_step``: a resumed run logs again the steps that its killed
        predecessor logged after its last checkpoint, and they must not appear twice."""
        if not self.enabled:
            return
        self._jsonl.close()
        truncate_jsonl(self._jsonl.name, max_step)
        self._jsonl = open(self._jsonl.name, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def add_image(self, tag: str, image, step: int) -> None:
        if self.enabled:
            self._writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self._writer.flush()
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
            self._jsonl.close()
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
