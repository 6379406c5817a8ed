"""The comparison table of experiments/ground_truth/README.md: one row per search method.

    python experiments/ground_truth/compare.py RUNS_DIR TABLE.csv
    python experiments/ground_truth/compare.py --selection SELECTION.csv TABLE.csv

RUNS_DIR holds one directory per method (softmax/, random/, ...), each with one run directory per search
seed; every method directory is summarised with dilnas-report against the ground-truth TABLE.csv (written
into it: summary.md, summary.json, ...), and the rows printed here are means over the seeds.

With --selection, the runs are those re-scored by rescore.py (SELECTION.csv, one row per shortlisted
architecture; a run's method is the name of its parent directory): one row per method with the rule's picks
and the kept ones, and the mean regret and percentile of each against TABLE.csv.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from dilnas.analysis.ground_truth_table import ArchResult, Ranking, rank_pick, read_table
from dilnas.analysis.sweep_summary import Agreement, report_sweep
from dilnas.spec.gapless import parse_rates_key
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


def ranked(table: dict[str, ArchResult], arch: str) -> Ranking:
    ranking = rank_pick(table, arch)
    if ranking is None:
        raise UserError(f"{arch} is not in the ground-truth table (add it with dilnas-grid include=[...])")
    return ranking


def agreement(picks: list[str]) -> float:
    """dilnas-report's agreement of ``picks`` (rates keys): per branch the share of the most chosen rate,
    averaged over the branches."""
    votes = []
    for index, column in enumerate(zip(*map(parse_rates_key, picks), strict=True)):
        rates = tuple(sorted(set(column)))
        votes.append(Agreement(str(index), rates, tuple(column.count(rate) for rate in rates)))
    return statistics.fmean(vote.share for vote in votes)


def selection_rows(selection: Path, table_path: Path) -> None:
    """One row per method of a rescore.py table: the rule's picks and the kept ones against the table."""
    table = read_table(table_path)
    picks: dict[str, dict[str, tuple[str, str]]] = {}  # method -> run -> (rule's pick, kept)
    with selection.open(newline="") as handle:
        for row in csv.DictReader(handle):
            run = Path(row["run"])
            rule, kept = picks.setdefault(run.parent.name, {}).get(row["run"], ("", ""))
            rule = row["arch"] if row["rank"] == "0" else rule
            kept = row["arch"] if row["kept"] == "1" else kept
            picks[run.parent.name][row["run"]] = (rule, kept)
    print(
        "| method | seeds | rule's picks -> kept | mean regret: rule / kept | kept within 1 | kept percentile "
        "| kept agreement |"
    )
    print("|---|---|---|---|---|---|---|")
    for method, runs in picks.items():
        rule = [ranked(table, pair[0]) for pair in runs.values()]
        kept = [ranked(table, pair[1]) for pair in runs.values()]
        arrows = ", ".join(f"{a} -> {b}" for a, b in runs.values())
        print(
            f"| {method} | {len(runs)} | {arrows} | {mean([r.regret for r in rule])} / "
            f"{mean([r.regret for r in kept])} (per seed {', '.join(f'{r.regret:.2f}' for r in kept)}) | "
            f"{sum(r.regret <= 1.0 for r in kept)}/{len(kept)} | {mean([r.percentile for r in kept])} | "
            f"{agreement([pair[1] for pair in runs.values()]):.2f} |"
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
    args = sys.argv[1:]
    if len(args) not in (2, 3) or (len(args) == 3) != (args[0] == "--selection"):
        sys.exit(f"usage: {__doc__.splitlines()[2].strip()}\n       {__doc__.splitlines()[3].strip()}")
    try:
        if args[0] == "--selection":
            selection_rows(Path(args[1]), Path(args[2]))
        else:
            main(Path(args[0]), Path(args[1]))
    except UserError as error:
        sys.exit(f"compare.py: {error}")
    except OSError as error:  # a selection table that cannot be read
        sys.exit(f"compare.py: {error.filename}: {error.strerror}")
