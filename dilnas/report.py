"""``dilnas-report``: summarise a sweep of ``dilnas-search`` runs and write a consensus architecture.

``dilnas-report sweep_dir=SWEEP_DIR [ground_truth=TABLE.csv]`` writes ``summary.md``, ``summary.csv``, ``summary.json`` and
``consensus_arch.json`` into SWEEP_DIR, then prints their paths and the per-run and agreement tables.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dilnas.analysis.sweep_summary import report_sweep
from dilnas.analysis.sweep_tables import agreement_table, run_table
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.options import ReportConfig
from dilnas.utils.tables import format_table


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


EXAMPLES = (
    "dilnas-report sweep_dir=runs/sweeps/DATE",
    "dilnas-report sweep_dir=runs/sweeps/DATE ground_truth=experiments/ground_truth/synthetic_tiny.csv",
)
main = hydra_command("dilnas-report", "report", run, EXAMPLES)

if __name__ == "__main__":
    main()
