"""The paired comparison of search methods (README: "Plan: the pre-registered paired comparison").

    python experiments/ground_truth/paired.py RUNS_DIR TABLE.csv [--baseline default]

RUNS_DIR holds one directory per method (default/, random/, uniform/, ...), each with one search run
directory per seed, named by the seed. Every run's kept pick is ranked against TABLE.csv (its regret: the
table's best mean mIoU minus the pick's); a run whose ``arch.json`` records a held-out selection also gives
``<method>_rule``, the rule's pick that ``search.select_top=1`` keeps. For every method other than the
baseline: the paired ``method - baseline`` regret over the seeds both ran (positive: the baseline picked
better), its 90% bootstrap interval over the pairs and the one-sided sign-flip p-value
(``dilnas.analysis.paired``). Picks missing from the table are listed with the grid command that adds them.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from dilnas.analysis.ground_truth_table import rank_pick, read_table
from dilnas.analysis.paired import compare_paired
from dilnas.analysis.sweep_summary import collect_runs
from dilnas.spec.arch import load_arch
from dilnas.spec.gapless import rates_key
from dilnas.train.selection import recorded_selection
from dilnas.utils.errors import UserError


def picks(method_dir: Path) -> dict[str, dict[int, str]]:
    """{method name: {seed: rates key}} of one method directory: the kept picks, and the rule's picks where
    the runs recorded a selection; nothing while no run of the method has finished."""
    if not any(method_dir.rglob("arch.json")):
        return {}
    _, runs = collect_runs(method_dir)
    kept: dict[int, str] = {}
    rule: dict[int, str] = {}
    for run in runs:
        if not Path(run.run).name.isdigit():
            raise SystemExit(
                f"{method_dir / run.run}: a run directory is named by its seed (e.g. {method_dir}/100)"
            )
        seed = int(Path(run.run).name)
        kept[seed] = rates_key(list(run.rates.values()))
        selection = recorded_selection(load_arch(method_dir / run.run / "arch.json"))
        if selection is not None and len(selection.scored) > 1:
            rule[seed] = rates_key(selection.rule_pick.rates)
    found = {method_dir.name: kept}
    if rule:
        found[f"{method_dir.name}_rule"] = rule
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("table", type=Path)
    parser.add_argument("--baseline", default="default")
    args = parser.parse_args()
    methods: dict[str, dict[int, str]] = {}
    for method_dir in sorted(path for path in args.runs.iterdir() if path.is_dir()):
        methods.update(picks(method_dir))
    if not methods.get(args.baseline):
        found = ", ".join(sorted(methods)) or "nothing"
        raise SystemExit(f"{args.runs}: no finished run in {args.baseline}/ (found: {found})")
    branches = len(next(iter(methods[args.baseline].values())).split("-"))
    table = read_table(args.table, branches)
    regrets: dict[str, dict[int, float]] = {}
    missing = set()
    for method, by_seed in methods.items():
        regrets[method] = {}
        for seed, arch in by_seed.items():
            ranking = rank_pick(table, arch)
            if ranking is None:
                missing.add(arch)
            else:
                regrets[method][seed] = ranking.regret
    print(
        "| method | runs ranked | mean regret | paired vs "
        + args.baseline
        + " | 90% interval | p (one-sided) |"
    )
    print("|---|---|---|---|---|---|")
    for method, by_seed in regrets.items():
        mean = f"{statistics.fmean(by_seed.values()):.2f}" if by_seed else "-"
        if method == args.baseline:
            print(f"| {method} | {len(by_seed)} | {mean} | (baseline) | | |")
            continue
        result = compare_paired(regrets[args.baseline], by_seed)
        if not result.seeds:
            print(f"| {method} | {len(by_seed)} | {mean} | no common seed | | |")
            continue
        low, high = result.interval
        kind = "exact" if result.exact else "sampled"
        print(
            f"| {method} | {len(by_seed)} | {mean} | {result.mean:+.2f} over {len(result.seeds)} pairs | "
            f"[{low:+.2f}, {high:+.2f}] | {result.p_value:.3f} ({kind}) |"
        )
    if missing:
        print(f"\n{len(missing)} picks are not in {args.table} yet: {', '.join(sorted(missing))}")
        print("add them: dilnas-grid ... include=[RUNS_DIR/*/*/arch.json] (the grid retrains each new pick)")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a table or a run directory the library refuses: one line, no traceback
        raise SystemExit(f"paired.py: error: {error}") from None
