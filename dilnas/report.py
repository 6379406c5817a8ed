"""``dilnas-report``: summarise a sweep of ``dilnas-search`` runs and write a consensus architecture.

``dilnas-report sweep_dir=SWEEP_DIR [ground_truth=TABLE.csv]`` writes ``summary.md``, ``summary.csv``, ``summary.json`` and
``consensus_arch.json`` into SWEEP_DIR, then prints their paths and the per-run and agreement tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dilnas.analysis.sweep_summary import report_sweep
from dilnas.analysis.sweep_tables import agreement_table, run_table
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.tool_options import ReportConfig
from dilnas.utils.errors import UserError
from dilnas.utils.tables import format_table

log = logging.getLogger("dilnas")


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, ReportConfig)
    sweep_dir = Path(config.sweep_dir)
    summary = report_sweep(sweep_dir, config.ground_truth)
    for name in summary["files"]:
        print(sweep_dir / name)
    print()
    print(format_table(*run_table(summary)))
    print()
    print(format_table(*agreement_table(summary)))


class SweepReport(Callback):
    """A Hydra callback (``conf/search.yaml``): writes the sweep report when a ``dilnas-search -m`` multirun
    ends, as ``dilnas-report`` does."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = report_sweep(sweep_dir)
        except UserError as error:  # a failed job must not hide the others' results: say why, keep going
            log.warning("sweep report skipped: %s", error)
            return
        log.info("sweep report: %s", ", ".join(str(sweep_dir / name) for name in summary["files"]))


EXAMPLES = (
    "dilnas-report sweep_dir=runs/sweeps/DATE",
    "dilnas-report sweep_dir=runs/sweeps/DATE ground_truth=experiments/ground_truth/synthetic_tiny.csv",
)
main = hydra_command("dilnas-report", "report", run, EXAMPLES)

if __name__ == "__main__":
    main()
