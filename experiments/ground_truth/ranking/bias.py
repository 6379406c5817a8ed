"""Is the supernet's ranking error noise or bias? Reads the ``rank.json`` of several ranked search runs.

    python experiments/ground_truth/ranking/bias.py RUN [RUN ...]

Each RUN is a ranked search run directory (its ``rank.json``) or a ``dilnas-rank`` report itself (``out=``, such
as a ``split=eval`` one: named after its folder and file).

Prints (Kendall tau throughout, over the architectures every run scored):
- each run's held-out scores against every other run's: runs that agree with each other far more than with
  the table share a bias, which more seeds or an ensemble cannot remove;
- the ensemble: the sum of the runs' standardised held-out scores (and log-probabilities, where the runs have
  them) against the table's means;
- the table's means against the sum of the rates and each branch's rate (what the table rewards), and each
  run's held-out scores against the sum of the rates (what the supernet rewards).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dilnas.analysis.rank_stats import kendall_tau
from dilnas.utils.tables import format_table


def standardised(values: list[float]) -> list[float]:
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    return [(value - mean) / spread if spread else 0.0 for value in values]


def ensemble(columns: list[list[float]]) -> list[float]:
    return [sum(row) for row in zip(*(standardised(column) for column in columns), strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    reports = {
        run.name if run.is_dir() else f"{run.parent.name}/{run.stem}": json.loads(
            (run / "rank.json" if run.is_dir() else run).read_text()
        )
        for run in args.runs
    }
    scored = [{entry["arch"]: entry for entry in report["archs"]} for report in reports.values()]
    archs = sorted(set.intersection(*(set(entries) for entries in scored)))
    truth = [scored[0][arch]["mean"] for arch in archs]
    heldout = {
        name: [entries[arch]["heldout_miou"] for arch in archs]
        for name, entries in zip(reports, scored, strict=True)
    }
    log_prob = {
        name: [entries[arch]["log_prob"] for arch in archs]
        for name, entries in zip(reports, scored, strict=True)
        if all(entries[arch].get("log_prob") is not None for arch in archs)
    }
    rates = [[int(rate) for rate in arch.split("-")] for arch in archs]
    rate_sum = [sum(row) for row in rates]

    names = list(heldout)
    rows = [
        [a, f"{kendall_tau(heldout[a], truth):.3f}", f"{kendall_tau(heldout[a], rate_sum):.3f}"]
        + [f"{kendall_tau(heldout[a], heldout[b]):.2f}" for b in names]
        for a in names
    ]
    print(f"{len(archs)} architectures, {len(names)} runs: held-out scores")
    print(format_table(["run", "vs table", "vs sum of rates", *names], rows))
    print(
        f"ensemble of the {len(names)} runs' held-out scores vs the table: {kendall_tau(ensemble(list(heldout.values())), truth):.3f}"
    )
    if log_prob:
        print(
            f"ensemble of the {len(log_prob)} runs' log-probabilities vs the table: "
            f"{kendall_tau(ensemble(list(log_prob.values())), truth):.3f}"
        )
    branches = ", ".join(f"{kendall_tau(truth, [row[i] for row in rates]):.2f}" for i in range(len(rates[0])))
    print(
        f"the table's means vs the sum of the rates: {kendall_tau(truth, rate_sum):.3f} (per branch: {branches})"
    )


if __name__ == "__main__":
    main()
