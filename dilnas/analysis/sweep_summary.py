"""Summaries of a sweep of ``dilnas-search`` runs (a Hydra multirun): what each run derived, how far the
runs agree, and a consensus architecture.

A run is any directory at or below the sweep directory that holds ``arch.json``; beside it the search wrote
``space.yaml`` (the space as searched), ``metrics.jsonl`` and Hydra's ``.hydra/overrides.yaml``. A run
still going (no ``metrics.jsonl`` or no evaluation yet) is listed with empty mIoU fields.

``report_sweep`` writes into the sweep directory ``summary.md``, ``summary.csv``, ``summary.json`` and
``consensus_arch.json``: the gapless architecture the runs' votes favour most, decided jointly by the deriver
(vote shares as probabilities, ``argmax``: the highest product of shares, ties to the smaller rates).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dilnas.spec.arch import ArchSpec, load_arch, save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.space import SearchSpace, load_space
from dilnas.train.run_dir import ARCH, METRICS, OVERRIDES, SPACE
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json, atomic_write_text

CONSENSUS_NAME = "consensus_arch.json"
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
def _natural_key(path: Path) -> list[list[tuple[int, Any]]]:
    """Order ``2`` before ``10``: Hydra numbers the jobs of a multirun 0, 1, ..., 10, ..."""
    return [
        [(0, int(token)) if token.isdigit() else (1, token) for token in re.split(r"(\d+)", part) if token]
        for part in path.parts
    ]


def find_runs(sweep_dir: str | os.PathLike) -> list[Path]:
    """Every directory at or below ``sweep_dir`` holding ``arch.json``, in natural order (links not followed)."""
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs[:] = [name for name in dirs if not name.startswith(".")]  # .hydra, .git: never runs
        if ARCH in files and (Path(root) / ARCH).is_file():
            found.append(Path(root))
    return sorted(found, key=lambda path: _natural_key(path.relative_to(sweep_dir)))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def read_metrics(path: Path) -> dict[str, float | None]:
    """Held-out mIoU (supernet, derived), gap and wall time from a run's ``metrics.jsonl``.

    The mIoU fields come from the last ``"kind": "eval"`` record; wall time is the last record's ``time``
    minus the first's (a resumed run includes the time it was stopped). A missing file gives empty fields;
    a truncated last line (a run being written or killed) is skipped.
    """
    result: dict[str, float | None] = dict(miou_supernet=None, miou=None, gap=None, wall_time_s=None)
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
    return result


def read_overrides(run_dir: Path, arch: ArchSpec) -> list[str]:
    """Hydra's record of the job's overrides, else the ones the search stamped into arch.json."""
    path = run_dir / OVERRIDES
    if path.is_file():
        try:
            overrides = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise UserError(f"{path}: cannot read overrides: {str(error).splitlines()[0]}") from None
        if overrides is None:
            return []
        if not isinstance(overrides, list):
            raise UserError(f"{path}: expected a list of overrides, got {type(overrides).__name__}")
        return [str(item) for item in overrides]
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
    first: tuple[str, str] | None = None  # (run, digest)
    for run_dir, arch in archs:
        label = run_dir.relative_to(sweep_dir).as_posix()
        digest, run_space = _run_space(run_dir, arch, run_dir / ARCH)
        if first is None:
            first = (label, digest)
        elif digest != first[1]:
            raise UserError(
                f"runs {first[0]} and {label} searched different spaces (digest {first[1][:12]} vs "
                f"{digest[:12]}); summarise one search space at a time"
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
    """The gapless architecture the votes favour most (vote shares as probabilities, the joint argmax)."""
    arch = derive_arch(
        space,
        [vote.shares for vote in votes],
        "argmax",
        name=f"{space.name}_consensus",
        provenance={"command": "dilnas-report"},
    )
    search = {**(arch.search or {}), "rule": "consensus", "runs": [run.run for run in runs]}
    return dataclasses.replace(arch, search=search)


# ---- writing -------------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def run_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-run table of a summary (rates in the space's branch order)."""
    headers = ["run", "rates", "fov", "supernet mIoU", "derived mIoU", "gap", "wall s"]
    rows = [
        [
            run["run"],
            " ".join(str(rate) for rate in run["rates"].values()),
            str(run["field_of_view"]),
            _number(run["miou_supernet"]),
            _number(run["miou"]),
            _number(run["gap"]),
            _number(run["wall_time_s"], 1),
        ]
        for run in summary["runs"]
    ]
    return headers, rows


def agreement_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-branch agreement table of a summary."""
    headers = ["branch", "most chosen", "runs", "share", "consensus"]
    consensus = summary["consensus"]["rates"]
    rows = [
        [
            key,
            str(vote["rate"]),
            f"{vote['count']}/{sum(vote['counts'])}",
            f"{vote['share']:.3f}",
            str(consensus[key]),
        ]
        for key, vote in summary["agreement"].items()
    ]
    return headers, rows


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(row) for row in rows)])


def _markdown(summary: dict[str, Any]) -> str:
    consensus = summary["consensus"]
    lines = [
        f"# Sweep summary: {summary['sweep_dir']}",
        "",
        f"Search space `{summary['space']['name']}` (digest `{summary['space']['digest'][:12]}`), "
        f"{len(summary['runs'])} runs; searchable branches {', '.join(summary['branches'])}.",
        "",
        "## Runs",
        "",
        _markdown_table(*run_table(summary)),
        "",
        "Overrides:",
        "",
        *(f"- `{run['run']}`: `{' '.join(run['overrides']) or '(none)'}`" for run in summary["runs"]),
        "",
        "## Agreement",
        "",
        _markdown_table(*agreement_table(summary)),
        "",
        "## Consensus",
        "",
        f"Rates {' '.join(str(rate) for rate in consensus['rates'].values())}, field of view "
        f"{consensus['field_of_view']} px, the gapless choice with the highest product of vote shares: `{consensus['arch']}`.",
        "",
    ]
    return "\n".join(lines)


def _csv(runs: Sequence[RunSummary], keys: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["run", "overrides", *keys, "field_of_view", "miou_supernet", "miou", "gap", "wall_time_s"]
    )
    for run in runs:
        metrics = [run.miou_supernet, run.miou, run.gap, run.wall_time_s]
        writer.writerow(
            [
                run.run,
                " ".join(run.overrides),
                *(run.rates[key] for key in keys),
                run.field_of_view,
                *("" if value is None else value for value in metrics),
            ]
        )
    return buffer.getvalue()


def _write(path: Path, write) -> Path:
    try:
        return write(path)
    except OSError as error:
        raise UserError(f"{path}: cannot write: {error.strerror or error}") from None


def report_sweep(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """Summarise a sweep; write ``summary.{md,csv,json}`` and ``consensus_arch.json`` into it.

    Returns what ``summary.json`` holds; ``files`` names the files written, relative to ``sweep_dir``.
    Everything is read and checked before anything is written.
    """
    sweep_dir = Path(sweep_dir)
    space, runs = collect_runs(sweep_dir)
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
            "rates": {key: arch.search["branches"][key]["choice"] for key in keys},
            "field_of_view": arch.field_of_view,
        },
        "files": [CONSENSUS_NAME, *SUMMARY_NAMES.values()],
    }
    _write(sweep_dir / CONSENSUS_NAME, lambda path: save_arch(arch, path))
    markdown = _markdown(summary)
    _write(sweep_dir / SUMMARY_NAMES["markdown"], lambda path: atomic_write_text(path, markdown))
    table = _csv(runs, keys)
    _write(sweep_dir / SUMMARY_NAMES["csv"], lambda path: atomic_write_text(path, table))
    _write(sweep_dir / SUMMARY_NAMES["json"], lambda path: atomic_write_json(path, summary))
    return summary
