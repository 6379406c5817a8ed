"""Ground truth for a search space: every gapless architecture (or a uniform sample) retrained over seeds.

``write_grid`` writes each architecture as arch JSON under ``<out>/archs/`` with a manifest
(``grid.json``); ``retrain_command`` is the Hydra multirun of ``dilnas-retrain`` over architectures x seeds
(any launcher: the overrides are the user's); ``collect`` reads the finished runs under ``<out>/runs/``
into one row per (architecture, seed) and ``write_table`` writes them as CSV. A search's pick is then
ranked against the table (``regret``, ``percentile``; ``dilnas.analysis.sweep_summary``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from dilnas.analysis.sweep_summary import find_runs
from dilnas.spec.arch import load_arch, save_arch
from dilnas.spec.gapless import count_gapless, sample_gapless
from dilnas.spec.space import SearchSpace, load_space
from dilnas.train.run_dir import RunDir
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json, atomic_write_text

MANIFEST = "grid.json"
TABLE = "ground_truth.csv"
ARCH_DIR = "archs"
RUNS_DIR = "runs"
COLUMNS = ("arch", "seed", "miou", "steps", "field_of_view", "cpu_seconds", "wall_seconds", "run")


def rates_key(rates: Sequence[int]) -> str:
    """The ``arch`` column: the searchable rates in branch order, ``2-5``."""
    return "-".join(str(rate) for rate in rates)


def parse_rates_key(key: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in key.split("-"))
    except ValueError:
        raise UserError(f"arch {key!r}: expected the searchable rates joined by '-', e.g. 2-5") from None


def write_grid(space: SearchSpace, out_dir: Path, sample: int | None, sample_seed: int) -> list[Path]:
    """Write every gapless architecture of ``space`` (or ``sample`` drawn uniformly) and the manifest."""
    total = count_gapless(space.base, space.branches)
    if sample is not None and sample < 1:
        raise UserError(f"sample={sample}: expected a number of architectures >= 1, or null for all")
    assignments = sample_gapless(space.base, space.branches, total if sample is None else sample, sample_seed)
    files, entries = [], []
    for rates in assignments:
        arch = space.arch_with(rates, name=f"{space.name}-{rates_key(rates)}")
        path = save_arch(arch, out_dir / ARCH_DIR / f"{arch.name}.json")
        files.append(path)
        entries.append(
            {"arch": rates_key(rates), "file": f"{ARCH_DIR}/{path.name}", "field_of_view": arch.field_of_view}
        )
    atomic_write_json(
        out_dir / MANIFEST,
        {
            "space": space.name,
            "space_digest": space.digest,
            "branches": [{"key": b.key, "block": b.block, "branch": b.branch} for b in space.branches],
            "gapless_total": total,
            "sample": sample,
            "sample_seed": sample_seed,
            "archs": entries,
        },
    )
    return files


def retrain_command(
    out_dir: Path, arch_files: Sequence[Path], seeds: Sequence[int], overrides: Sequence[str]
) -> list[str]:
    """The multirun: every architecture x every seed, resumable (``resume=true``: a finished job only
    reports its result again, so the same command continues an interrupted grid)."""
    return [
        sys.executable,
        "-m",
        "dilnas.retrain",
        "-m",
        "seed=" + ",".join(str(seed) for seed in seeds),  # outermost: every architecture's first seed first
        "arch=" + ",".join(str(path) for path in arch_files),
        "resume=true",
        f"hydra.sweep.dir={out_dir / RUNS_DIR}",
        *overrides,
    ]


@dataclass
class GridRow:
    arch: str
    seed: int
    miou: float
    steps: int
    field_of_view: int
    cpu_seconds: float | None
    wall_seconds: float | None
    run: str


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{path}: no grid manifest; run dilnas-grid with stage=write or stage=all first"
        ) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the grid manifest: {error}") from None


def collect(out_dir: Path) -> list[GridRow]:
    """One row per finished (architecture, seed) run below ``<out>/runs``; unfinished runs are left out."""
    branches = [(entry["block"], entry["branch"]) for entry in read_manifest(out_dir)["branches"]]
    rows = []
    for run in find_runs(out_dir / RUNS_DIR):
        final = _final_eval(RunDir(run).metrics)
        if final is None:
            continue
        config = yaml.safe_load(RunDir(run).config.read_text(encoding="utf-8")) or {}
        arch = load_arch(RunDir(run).arch, allow_gaps=True)
        rates = [arch.blocks[block].dilations[branch] for block, branch in branches]
        rows.append(
            GridRow(
                arch=rates_key(rates),
                seed=int(config.get("seed", 0)),
                miou=float(final["val/miou"]),
                steps=int(final["step"]),
                field_of_view=arch.field_of_view,
                cpu_seconds=final.get("cpu_seconds"),
                wall_seconds=final.get("wall_seconds"),
                run=run.relative_to(out_dir).as_posix(),
            )
        )
    return sorted(rows, key=lambda row: (parse_rates_key(row.arch), row.seed))


def _final_eval(path: Path) -> dict[str, Any] | None:
    """The evaluation a finished run logged last (``final``), or None while it runs."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if isinstance(record, dict) and record.get("kind") == "eval" and record.get("final"):
            return record
    return None


def write_table(rows: Sequence[GridRow], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in asdict(row).items()})
    return atomic_write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@dataclass(frozen=True)
class ArchResult:
    """One architecture of a ground-truth table: its mIoU over seeds."""

    arch: str
    mious: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.mious)

    @property
    def std(self) -> float:
        return statistics.stdev(self.mious) if len(self.mious) > 1 else 0.0


def read_table(path: Path) -> dict[str, ArchResult]:
    """A ground-truth CSV as {arch: mIoU over seeds}; one-line errors for a file that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such ground-truth table") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"arch", "seed", "miou"} - set(reader.fieldnames or ())
    if missing:
        raise UserError(f"{path}: not a ground-truth table: missing column(s) {', '.join(sorted(missing))}")
    mious: dict[str, list[float]] = {}
    for number, row in enumerate(reader, start=2):
        try:
            value = float(row["miou"])
        except (TypeError, ValueError):
            raise UserError(f"{path}:{number}: miou {row['miou']!r} is not a number") from None
        if not math.isfinite(value):
            raise UserError(f"{path}:{number}: miou {row['miou']!r} is not finite")
        parse_rates_key(row["arch"])
        mious.setdefault(row["arch"], []).append(value)
    if not mious:
        raise UserError(f"{path}: the ground-truth table has no rows")
    return {arch: ArchResult(arch, tuple(values)) for arch, values in mious.items()}


def load_grid_space(out_dir: Path) -> SearchSpace:
    return load_space(read_manifest(out_dir)["space"])
