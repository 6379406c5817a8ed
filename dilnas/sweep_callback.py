"""A Hydra callback that writes the sweep report when a ``dilnas-search -m`` multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dilnas.errors import UserError
from dilnas.sweep import report_sweep

log = logging.getLogger("dilnas")


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = report_sweep(sweep_dir)
        except UserError as error:  # a failed job must not hide the others' results: say why, keep going
            log.warning("sweep report skipped: %s", error)
            return
        log.info("sweep report: %s", ", ".join(str(sweep_dir / name) for name in summary["files"]))
