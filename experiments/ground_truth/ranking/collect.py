"""The ranking experiments' table: one row per search run with a ``rank.json`` (``dilnas-rank``).

    python experiments/ground_truth/ranking/collect.py OUT.csv RUN_DIR [RUN_DIR ...] [--report rank.json]

Columns: run (its folder name: variant_seed), the held-out scores' Kendall tau with its 90% interval, Spearman,
top-5 overlap, the log-probabilities' Kendall tau with its 90% interval, the held-out cross-entropy's, the
table's seed ceiling, and the search's CPU seconds (a few-shot report's: its sub-searches' sum).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dilnas.analysis.ground_truth import final_eval
from dilnas.train.run_dir import METRICS
from dilnas.utils.files import atomic_write_csv

COLUMNS = (
    "run",
    "kendall",
    "kendall_low",
    "kendall_high",
    "spearman",
    "top5",
    "logprob_kendall",
    "logprob_low",
    "logprob_high",
    "loss_kendall",
    "ceiling",
    "search_cpu_seconds",
)


def row(run_dir: Path, name: str = "rank.json") -> dict[str, object]:
    report = json.loads((run_dir / name).read_text(encoding="utf-8"))
    cpu = report.get("search_cpu_seconds")  # few_shot.py's reports: the sub-searches' sum
    if cpu is None:
        final = final_eval(run_dir / METRICS)
        cpu = final["cpu_seconds"] if final else None
    held, logp = report["heldout"], report["log_prob"]
    return {
        "run": run_dir.name,
        "kendall": round(held["kendall"], 3),
        "kendall_low": round(held["kendall_interval"][0], 3),
        "kendall_high": round(held["kendall_interval"][1], 3),
        "spearman": round(held["spearman"], 3),
        "top5": held["top_overlap"],
        "logprob_kendall": round(logp["kendall"], 3),
        "logprob_low": round(logp["kendall_interval"][0], 3),
        "logprob_high": round(logp["kendall_interval"][1], 3),
        # Reports written before the held-out cross-entropy was scored have none.
        "loss_kendall": round(report["heldout_loss"]["kendall"], 3) if "heldout_loss" in report else "",
        "ceiling": round(report["ceiling"]["kendall"], 3),
        "search_cpu_seconds": "" if cpu is None else round(cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--report", default="rank.json", help="the report's file name in each run directory")
    args = parser.parse_args()
    rows = [row(run, args.report) for run in args.runs if (run / args.report).is_file()]
    atomic_write_csv(args.out, COLUMNS, rows)
    print(f"{args.out}: {len(rows)} runs")


if __name__ == "__main__":
    main()
