"""The comparison table of experiments/ground_truth/README.md: one row per search method.

    python experiments/ground_truth/compare.py RUNS_DIR TABLE.csv

RUNS_DIR holds one directory per method (softmax/, random/, ...), each with one run directory per search
seed; every method directory is summarised with dilnas-report against the ground-truth TABLE.csv (written
into it: summary.md, summary.json, ...), and the rows printed here are means over the seeds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from dilnas.analysis.sweep_summary import report_sweep
from dilnas.utils.errors import UserError


def mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else "-"


def row(method_dir: Path, table: Path) -> str:
    summary = report_sweep(method_dir, table)
    runs = summary["runs"]
    picks = ", ".join("-".join(str(rate) for rate in run["rates"].values()) for run in runs)
    regrets = [run["regret"] for run in runs if run["regret"] is not None]
    percentiles = [run["percentile"] for run in runs if run["percentile"] is not None]
    within_1 = sum(regret <= 1.0 for regret in regrets)
    agreement = statistics.fmean(vote["share"] for vote in summary["agreement"].values())
    gaps = [run["gap"] for run in runs if run["gap"] is not None]
    cost = [run["cpu_seconds"] / 60 for run in runs if run["cpu_seconds"] is not None]
    return (
        f"| {method_dir.name} | {len(runs)} | {picks} | {mean(regrets)} | {within_1}/{len(regrets)} | "
        f"{mean(percentiles)} | {agreement:.2f} | {mean(gaps)} | {mean(cost)} |"
    )


def main(runs_dir: Path, table: Path) -> None:
    print(
        "| method | seeds | picks | mean regret | regret <= 1 | mean percentile | agreement | gap | CPU-min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for method_dir in sorted(path for path in runs_dir.iterdir() if path.is_dir()):
        try:
            print(row(method_dir, table))
        except UserError as error:  # e.g. a method whose runs have not finished yet
            print(f"| {method_dir.name} | {error} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
