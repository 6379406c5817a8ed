"""Summaries of a sweep of ``dilnas-search`` runs (a Hydra multirun): what each run derived, how far the
runs agree, and a consensus architecture.

A run is any directory at or below the sweep directory that holds ``arch.json``; beside it the search wrote
``space.yaml`` (the space as searched), ``metrics.jsonl`` and Hydra's ``.hydra/overrides.yaml``. A run
still going (no ``metrics.jsonl`` or no evaluation yet) is listed with empty mIoU fields.

``report_sweep`` writes into the sweep directory ``summary.md``, ``summary.csv``, ``summary.json`` and
``consensus_arch.json``: the gapless architecture the runs' votes favour most, decided jointly by the deriver
(vote shares as probabilities, ``argmax``: the highest product of shares; among tied architectures one that a run
picked, never one no run picked).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dilnas.analysis import sweep_tables
from dilnas.analysis.ground_truth_table import rank_pick, read_table, table_cost
from dilnas.analysis.search_history import read_overrides as recorded_overrides
from dilnas.spec.arch import ArchSpec, load_arch, save_arch
from dilnas.spec.derivation import branch_scores, derive_arch
from dilnas.spec.gapless import rates_key, top_gapless
from dilnas.spec.options import DeriveRule
from dilnas.spec.space import SearchSpace, load_space
from dilnas.train.run_dir import ARCH, METRICS, OVERRIDES, SPACE, find_runs
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json, atomic_write_text
from dilnas.utils.provenance import stamp

CONSENSUS_NAME = "consensus_arch.json"
CONSENSUS_CANDIDATES = 64  # the most voted gapless architectures among which ties are looked for
SUMMARY_NAMES = {"markdown": "summary.md", "csv": "summary.csv", "json": "summary.json"}


@dataclass
class RunSummary:
    """One search run of the sweep; the metric fields are None when the run has not evaluated yet."""

    run: str  # directory relative to the sweep directory, POSIX style
    overrides: list[str]
    rates: dict[str, int]  # searchable branch key -> derived rate
    field_of_view: int
    miou_supernet: float | None = None
    miou: float | None = None  # the derived network, held-out split
    gap: float | None = None  # supernet minus derived
    wall_time_s: float | None = None
    cpu_seconds: float | None = None  # the search's cost (CPU time of its process, over every resume)
    # Against a ground-truth table (dilnas-report ground_truth=TABLE.csv); None without one, or when the
    # table does not hold the run's pick:
    pick_miou: float | None = None  # the pick's mean mIoU over the table's retraining seeds
    regret: float | None = None  # the table's best mean mIoU minus pick_miou
    percentile: float | None = None  # share of the table's architectures at most as good as the pick (%)


@dataclass
class Agreement:
    """How the runs voted on one searchable branch."""

    key: str
    rates: tuple[int, ...]  # the branch's candidates
    counts: tuple[int, ...]  # runs choosing each candidate

    @property
    def runs(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> list[float]:
        return [count / self.runs for count in self.counts]

    @property
    def rate(self) -> int:
        """The most chosen rate; a tie goes to the smaller rate, as in the deriver."""
        return max(zip(self.counts, self.rates, strict=True), key=lambda cr: (cr[0], -cr[1]))[1]

    @property
    def count(self) -> int:
        return self.counts[self.rates.index(self.rate)]

    @property
    def share(self) -> float:
        return self.count / self.runs


# ---- finding and reading runs --------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def read_metrics(path: Path) -> dict[str, float | None]:
    """Held-out mIoU (supernet, derived), gap, wall time and CPU time from a run's ``metrics.jsonl``.

    The mIoU fields come from the last ``"kind": "eval"`` record; wall time is the last record's ``time``
    minus the first's (a resumed run includes the time it was stopped). A missing file gives empty fields;
    a truncated last line (a run being written or killed) is skipped.
    """
    result: dict[str, float | None] = dict(
        miou_supernet=None, miou=None, gap=None, wall_time_s=None, cpu_seconds=None
    )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return result
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read metrics: {error}") from None
    records = []
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    for position, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if position == len(numbered) - 1:
                break
            raise UserError(
                f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})"
            ) from None
        if isinstance(record, dict):
            records.append(record)
    times = [time for time in (_finite(record.get("time")) for record in records) if time is not None]
    if times:
        result["wall_time_s"] = times[-1] - times[0]
    evals = [record for record in records if record.get("kind") == "eval"]
    if evals:
        last = evals[-1]
        result["miou"] = _finite(last.get("search/miou"))
        result["miou_supernet"] = _finite(last.get("search/miou_supernet"))
        result["gap"] = _finite(last.get("search/gap"))
        result["cpu_seconds"] = _finite(last.get("cpu_seconds"))
    return result


def read_overrides(run_dir: Path, arch: ArchSpec) -> list[str]:
    """Hydra's record of the job's overrides, else the ones the search stamped into arch.json."""
    if (run_dir / OVERRIDES).is_file():
        return recorded_overrides(run_dir)
    overrides = (arch.provenance or {}).get("overrides") or []
    return [str(item) for item in overrides] if isinstance(overrides, list) else []


def _run_space(run_dir: Path, arch: ArchSpec, arch_path: Path) -> tuple[str, SearchSpace | None]:
    """(digest, space or None): the run's space.yaml, else only the digest recorded in arch.json."""
    if (run_dir / SPACE).is_file():
        space = load_space(run_dir / SPACE)
        return space.digest, space
    digest = (arch.search or {}).get("space_digest")
    if not isinstance(digest, str):
        raise UserError(
            f"{arch_path}: no {SPACE} beside it and no search.space_digest in it; "
            "expected the output directory of dilnas-search"
        )
    return digest, None


def _branch_rates(space: SearchSpace, arch: ArchSpec, arch_path: Path) -> dict[str, int]:
    recorded = (arch.search or {}).get("branches")
    if not isinstance(recorded, dict):
        raise UserError(f"{arch_path}: no search.branches section; expected the arch.json of dilnas-search")
    rates = {}
    for branch in space.branches:
        entry = recorded.get(branch.key)
        choice = entry.get("choice") if isinstance(entry, dict) else None
        if isinstance(choice, bool) or choice not in branch.candidates:
            raise UserError(
                f"{arch_path}: search.branches[{branch.key!r}].choice is {json.dumps(choice)}; "
                f"expected one of the candidates {list(branch.candidates)} of space {space.name}"
            )
        rates[branch.key] = choice
    return rates


def collect_runs(sweep_dir: Path) -> tuple[SearchSpace, list[RunSummary]]:
    """The sweep's space and one summary per run; UserError when runs were searched in different spaces."""
    if not sweep_dir.is_dir():
        raise UserError(f"sweep_dir={sweep_dir}: no such directory")
    run_dirs = find_runs(sweep_dir)
    if not run_dirs:
        raise UserError(
            f"{sweep_dir}: no {ARCH} in this directory or below it "
            "(expected the directory of a dilnas-search multirun)"
        )
    archs = [(run_dir, load_arch(run_dir / ARCH)) for run_dir in run_dirs]
    space: SearchSpace | None = None
    spaces = [_run_space(run_dir, arch, run_dir / ARCH) for run_dir, arch in archs]  # (digest, space or None)
    first = (run_dirs[0].relative_to(sweep_dir).as_posix(), spaces[0][0])
    for run_dir, (digest, run_space) in zip(run_dirs, spaces, strict=True):
        if digest != first[1]:
            raise UserError(
                f"runs {first[0]} and {run_dir.relative_to(sweep_dir).as_posix()} searched different spaces "
                f"(digest {first[1][:12]} vs {digest[:12]}); summarise one search space at a time"
            )
        if space is None:
            space = run_space
    if space is None:  # no run kept its space.yaml: a shipped space of the same digest will do
        name = (archs[0][1].search or {}).get("space", "")
        space = load_space(str(name)) if isinstance(name, str) and name else None
        if space is None or space.digest != first[1]:
            raise UserError(f"{sweep_dir}: no run holds {SPACE}, and the space it names has changed since")
    # The search sets num_classes from the dataset; the consensus keeps the first run's.
    space = dataclasses.replace(space, base=space.base.with_num_classes(archs[0][1].num_classes))

    runs = []
    for run_dir, arch in archs:
        runs.append(
            RunSummary(
                run=run_dir.relative_to(sweep_dir).as_posix(),
                overrides=read_overrides(run_dir, arch),
                rates=_branch_rates(space, arch, run_dir / ARCH),
                field_of_view=arch.field_of_view,
                **read_metrics(run_dir / METRICS),
            )
        )
    return space, runs


# ---- agreement and consensus ---------------------------------------------------------------------
def agreement(space: SearchSpace, runs: Sequence[RunSummary]) -> list[Agreement]:
    """Per searchable branch (in the space's order), how many runs chose each candidate."""
    return [
        Agreement(
            key=branch.key,
            rates=branch.candidates,
            counts=tuple(sum(run.rates[branch.key] == rate for run in runs) for rate in branch.candidates),
        )
        for branch in space.branches
    ]


def consensus_arch(space: SearchSpace, votes: Sequence[Agreement], runs: Sequence[RunSummary]) -> ArchSpec:
    """The gapless architecture the votes favour most: the highest product of vote shares, decided jointly.
    Among architectures tied at that product, one that a run picked (the most often picked) wins, never one no
    run picked; ``search.consensus`` records the tie, the product and how many runs picked it."""
    keys = [branch.key for branch in space.branches]
    shares = [list(vote.shares) for vote in votes]
    scores = [
        branch_scores(b.candidates, p, DeriveRule.argmax) for b, p in zip(space.branches, shares, strict=True)
    ]
    ranked = top_gapless(space.base, space.branches, scores, CONSENSUS_CANDIDATES)

    def product(rates: Sequence[int]) -> float:
        return math.prod(vote.shares[vote.rates.index(rate)] for vote, rate in zip(votes, rates, strict=True))

    best = product(ranked[0])
    tied = [rates for rates in ranked if math.isclose(product(rates), best, rel_tol=1e-9)]
    picks = [tuple(run.rates[key] for key in keys) for run in runs]
    chosen = max(tied, key=lambda rates: (picks.count(tuple(rates)), -tied.index(rates)))
    arch = derive_arch(
        space,
        shares,
        DeriveRule.argmax,
        name=f"{space.name}_consensus",
        provenance=stamp(command="dilnas-report"),
        rates=chosen,
    )
    strength = {
        "vote_product": best,
        "tie": len(tied) > 1,
        "picked_by": picks.count(tuple(chosen)),
        "runs": len(runs),
    }
    search = {
        **(arch.search or {}),
        "rule": "consensus",
        "runs": [run.run for run in runs],
        "consensus": strength,
    }
    return dataclasses.replace(arch, search=search)


# ---- ground truth ------------------------------------------------------------------------------
def rank_runs(runs: Sequence[RunSummary], table_path: Path, branches: int) -> dict[str, Any]:
    """Fill each run's ``pick_miou``, ``regret`` and ``percentile`` from a ground-truth table; returns the
    table's summary (its best architecture, size and cost, and the picks it does not hold)."""
    table = read_table(table_path, branches)
    missing = []
    for run in runs:
        ranking = rank_pick(table, rates_key(list(run.rates.values())))
        if ranking is None:
            missing.append(rates_key(list(run.rates.values())))
            continue
        run.pick_miou, run.regret, run.percentile = ranking.pick_miou, ranking.regret, ranking.percentile
    best = max(table.values(), key=lambda result: result.mean)
    return {
        "table": str(table_path),
        "archs": len(table),
        "best_arch": best.arch,
        "best_miou": best.mean,
        "cpu_seconds": table_cost(table),
        "picks_not_in_table": sorted(set(missing)),
    }


# ---- writing -------------------------------------------------------------------------------------
def report_sweep(
    sweep_dir: str | os.PathLike, ground_truth: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Summarise a sweep; write ``summary.{md,csv,json}`` and ``consensus_arch.json`` into it.

    With ``ground_truth`` (a table of ``dilnas-grid``), every run's pick is ranked against it: ``regret`` and
    ``percentile`` per run, and the table's best architecture and cost in ``ground_truth``.
    Returns what ``summary.json`` holds; ``files`` names the files written, relative to ``sweep_dir``.
    Everything is read and checked before anything is written.
    """
    sweep_dir = Path(sweep_dir)
    space, runs = collect_runs(sweep_dir)
    reference = rank_runs(runs, Path(ground_truth), len(space.branches)) if ground_truth else None
    votes = agreement(space, runs)
    arch = consensus_arch(space, votes, runs)
    keys = [branch.key for branch in space.branches]
    summary = {
        "sweep_dir": str(sweep_dir),
        "space": {"name": space.name, "digest": space.digest},
        "branches": keys,
        "runs": [dataclasses.asdict(run) for run in runs],
        "agreement": {
            vote.key: {
                "rates": list(vote.rates),
                "counts": list(vote.counts),
                "rate": vote.rate,
                "count": vote.count,
                "share": vote.share,
            }
            for vote in votes
        },
        "consensus": {
            "arch": CONSENSUS_NAME,
            "rates": {key: (arch.search or {})["branches"][key]["choice"] for key in keys},
            "field_of_view": arch.field_of_view,
            **(arch.search or {})["consensus"],
        },
        "files": [CONSENSUS_NAME, *SUMMARY_NAMES.values()],
    }
    if reference is not None:
        summary["ground_truth"] = reference
    save_arch(arch, sweep_dir / CONSENSUS_NAME)
    markdown = sweep_tables.markdown(summary)
    atomic_write_text(sweep_dir / SUMMARY_NAMES["markdown"], markdown)
    table = sweep_tables.runs_csv(runs, keys)
    atomic_write_text(sweep_dir / SUMMARY_NAMES["csv"], table)
    atomic_write_json(sweep_dir / SUMMARY_NAMES["json"], summary)
    return summary
