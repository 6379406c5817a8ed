"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021) as a ranking experiment:
split a search space on one branch into one sub-space per candidate rate, search each sub-space with its own
supernet, and score every architecture with the supernet whose sub-space holds it.

    python experiments/ground_truth/ranking/few_shot.py spaces SPACE BRANCH OUT_DIR
        one space file per candidate of BRANCH (``block4.b1``), that branch fixed to it: OUT_DIR/<name>_<rate>.yaml
    python experiments/ground_truth/ranking/few_shot.py rank TABLE OUT_DIR RUN_DIR [RUN_DIR ...]
        every architecture of TABLE scored by the one run whose space holds it, compared with the table as
        ``dilnas-rank`` compares one run (``dilnas.analysis.ranking``): OUT_DIR/rank.json, with the runs' CPU
        seconds summed (the few-shot search's cost)

A sub-space keeps the no-gap rule: fixing an early branch to a small rate lowers the bound of the later ones, so
together the sub-spaces hold exactly the gapless architectures of the space.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from dilnas.analysis.ground_truth import final_eval
from dilnas.analysis.ground_truth_table import read_table
from dilnas.analysis.ranking import RunScores, compare_scores, in_space, score_run
from dilnas.spec.reading import parse_yaml, read_text
from dilnas.spec.space import load_space, space_path
from dilnas.spec.tool_options import RankConfig
from dilnas.train.run_dir import METRICS, RunDir
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json, atomic_write_text


def split_space(path: str | Path, branch_key: str) -> list[tuple[int, dict[str, Any]]]:
    """(rate, space document) per candidate of ``branch_key``: the space's file with ``repeat`` blocks
    expanded and that branch fixed to a one-candidate list."""
    space = load_space(path)
    keys = [branch.key for branch in space.branches]
    if branch_key not in keys:
        raise UserError(f"{path}: no searchable branch {branch_key} (branches: {', '.join(keys)})")
    branch = space.branches[keys.index(branch_key)]
    source = space_path(path)
    document = parse_yaml(read_text(source, "search space"), str(source))  # as load_space read it
    blocks: list[dict[str, Any]] = []
    for block in document["blocks"]:
        repeat = block.get("repeat", 1)
        plain = {key: value for key, value in block.items() if key != "repeat"}
        blocks.extend(copy.deepcopy(plain) for _ in range(repeat))
    spaces = []
    for rate in branch.candidates:
        sub = copy.deepcopy(document)
        sub["blocks"] = copy.deepcopy(blocks)
        sub["blocks"][branch.block]["dilations"][branch.branch] = [rate]
        sub["name"] = f"{document['name']}_{branch_key.replace('.', '')}_{rate}"
        sub["description"] = (
            f"{document['name']} with {branch_key} fixed to rate {rate} (a few-shot sub-space)"
        )
        spaces.append((rate, sub))
    return spaces


def combined_scores(runs: list[Path], archs: list[str], table: str) -> tuple[RunScores, float]:
    """Every architecture scored by the one run whose space holds it, and the runs' summed CPU seconds."""
    owner: dict[str, Path] = {}
    for run in runs:
        space = load_space(RunDir(run).space)
        for arch in archs:
            if in_space(space, arch):
                if arch in owner:
                    raise UserError(f"{table}: arch {arch} is in the spaces of both {owner[arch]} and {run}")
                owner[arch] = run
    missing = [arch for arch in archs if arch not in owner]
    if missing:
        raise UserError(f"{table}: no run's space holds {', '.join(missing)}")
    merged = RunScores(Path(), {}, {}, {})
    cpu = 0.0
    for run in runs:
        mine = [arch for arch in archs if owner[arch] == run]
        print(f"few_shot: {run}: scoring {len(mine)} architectures", file=sys.stderr, flush=True)
        scores = score_run(RankConfig(run_dir=str(run), ground_truth=table), mine)
        merged.heldout.update(scores.heldout)
        merged.losses.update(scores.losses)
        merged.log_prob.update(scores.log_prob)
        cpu += final_cpu_seconds(run)
    return merged, cpu


def final_cpu_seconds(run: Path) -> float:
    """The CPU seconds of a finished search (its final evaluation record, ``final_eval``)."""
    final = final_eval(run / METRICS)
    if final is None:
        raise UserError(f"{run}: the search has not finished (no final record in {METRICS})")
    return float(final["cpu_seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    spaces = commands.add_parser("spaces", help="one space file per candidate of a branch")
    spaces.add_argument("space", type=Path)
    spaces.add_argument("branch")
    spaces.add_argument("out_dir", type=Path)
    rank = commands.add_parser("rank", help="the few-shot supernets' ranking of a table")
    rank.add_argument("table")
    rank.add_argument("out_dir", type=Path)
    rank.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "spaces":
            for rate, document in split_space(args.space, args.branch):
                out = args.out_dir / f"{document['name']}.yaml"
                atomic_write_text(out, yaml.safe_dump(document, sort_keys=False))
                print(f"{out}: {args.branch} = {rate}")
            return 0
        first = load_space(RunDir(args.runs[0]).space)
        table = read_table(Path(args.table), len(first.branches))
        scores, cpu = combined_scores(args.runs, sorted(table), args.table)
        report = {
            "runs": [str(run) for run in args.runs],
            "ground_truth": args.table,
            **compare_scores(scores, table, RankConfig(run_dir=str(args.runs[0]), ground_truth=args.table)),
            "search_cpu_seconds": cpu,
        }
        out = args.out_dir / "rank.json"
        atomic_write_json(out, report)
        print(
            f"{out}: Kendall tau held-out {report['heldout']['kendall']:.3f}, log-probabilities "
            f"{report['log_prob']['kendall']:.3f} (ceiling {report['ceiling']['kendall']:.3f}); "
            f"{cpu:.1f} CPU-s in all"
        )
        return 0
    except UserError as error:
        print(f"few_shot: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
