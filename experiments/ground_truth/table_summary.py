"""A ground-truth table at a glance: one Markdown row per architecture (seeds, mean, std), best first, and
whether the table tells architectures apart (the mean per-architecture std over seeds against the spread of the
means) and what its retrainings cost.

    python experiments/ground_truth/table_summary.py TABLE.csv [--min-seeds 2]

Architectures with fewer than --min-seeds rows are listed but left out of the spread and noise figures.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from dilnas.analysis.ground_truth_table import read_table
from dilnas.utils.errors import UserError


def summary(path: Path, min_seeds: int) -> str:
    table = read_table(path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    lines = ["| rank | arch | mIoU per seed | mean | std |", "|---|---|---|---|---|"]
    ranked = sorted(table.values(), key=lambda result: -result.mean)
    for rank, result in enumerate(ranked, start=1):
        per_seed = " / ".join(f"{miou:.2f}" for miou in result.mious)
        lines.append(f"| {rank} | {result.arch} | {per_seed} | {result.mean:.2f} | {result.std:.2f} |")
    complete = [result for result in ranked if len(result.mious) >= min_seeds]
    if len(complete) >= 2:
        spread = complete[0].mean - complete[-1].mean
        noise = statistics.fmean(result.std for result in complete)
        lines += [
            "",
            f"{len(complete)} architectures with at least {min_seeds} seeds: best {complete[0].arch} "
            f"{complete[0].mean:.2f}, worst {complete[-1].arch} {complete[-1].mean:.2f}, spread {spread:.2f}; "
            f"mean std over seeds {noise:.2f} = {noise / spread:.2f} of the spread (bound: 0.25).",
        ]
    costs = [float(row["cpu_seconds"]) / 60 for row in rows if row.get("cpu_seconds")]
    if costs:
        lines.append(
            f"{len(rows)} retrainings, {sum(costs):.0f} CPU-minutes: {statistics.fmean(costs):.1f} per run on "
            f"average, {max(costs):.1f} at most."
        )
    machines = {(row.get("cpu_model"), row.get("torch_version"), row.get("threads")) for row in rows}
    if all(all(machine) for machine in machines):
        lines.append(
            "Machines: " + "; ".join(f"{c}, torch {t}, {n} thread(s)" for c, t, n in sorted(machines))
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--min-seeds", type=int, default=2)
    args = parser.parse_args()
    try:
        print(summary(args.table, args.min_seeds))
    except UserError as error:
        sys.exit(f"table_summary.py: {error}")


if __name__ == "__main__":
    main()
