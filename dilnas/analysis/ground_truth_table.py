"""A ground-truth table (``ground_truth.csv``): one row per retrained (architecture, seed), its one reader
(``read_rows``, checked line by line), its writer, and the per-architecture view the reports rank picks in.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dilnas.spec.gapless import parse_rates_key
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_csv

# resumes, cpu_model, torch_version and threads: what the run recorded (empty in tables older than them)
COLUMNS = (
    "arch",
    "seed",
    "miou",
    "steps",
    "field_of_view",
    "cpu_seconds",
    "wall_seconds",
    "resumes",
    "cpu_model",
    "torch_version",
    "threads",
    "run",
)
REQUIRED = ("arch", "seed", "miou")


@dataclass
class GridRow:
    """One retraining: its architecture (the searchable rates, ``2-5``), seed and evaluation mIoU, and what
    the run recorded (None where a table, e.g. one written by hand, leaves it out)."""

    arch: str
    seed: int
    miou: float
    steps: int | None = None
    field_of_view: int | None = None
    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    run: str | None = None
    resumes: int | None = None  # times the run was continued from a checkpoint
    cpu_model: str | None = None
    torch_version: str | None = None
    threads: int | None = None


def read_rows(path: Path) -> list[GridRow]:
    """Every row of a ground-truth CSV, checked: a file that cannot be read (or is not UTF-8), a missing
    column, a cell that is not a number or an architecture, and an (arch, seed) listed twice are one-line
    errors naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not a column name
    except FileNotFoundError:
        raise UserError(f"{path}: no such ground-truth table") from None
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not UTF-8 text (byte {error.start}): save the table as UTF-8 CSV (a spreadsheet's "
            "re-save may have changed the encoding)"
        ) from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the ground-truth table: {error.strerror or error}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = set(REQUIRED) - set(reader.fieldnames or ())
    if missing:
        raise UserError(f"{path}: not a ground-truth table: missing column(s) {', '.join(sorted(missing))}")
    rows: list[GridRow] = []
    lines: dict[tuple[str, int], int] = {}
    for number, row in enumerate(reader, start=2):
        cells = _Cells(path, number, row)
        arch = cells.arch()
        seed = cells.integer("seed")
        assert seed is not None
        if (arch, seed) in lines:
            raise UserError(
                f"{path}:{number}: arch {arch} seed {seed} is already on line {lines[arch, seed]}: one row per "
                "retraining (remove the duplicate)"
            )
        lines[arch, seed] = number
        miou = cells.number("miou")
        assert miou is not None
        rows.append(
            GridRow(
                arch=arch,
                seed=seed,
                miou=miou,
                steps=cells.integer("steps", required=False),
                field_of_view=cells.integer("field_of_view", required=False),
                cpu_seconds=cells.number("cpu_seconds", required=False),
                wall_seconds=cells.number("wall_seconds", required=False),
                run=row.get("run") or None,
                resumes=cells.integer("resumes", required=False),
                cpu_model=row.get("cpu_model") or None,
                torch_version=row.get("torch_version") or None,
                threads=cells.integer("threads", required=False),
            )
        )
    return rows


class _Cells:
    """The cells of one CSV line, each read with a one-line error naming the file, the line and the column."""

    def __init__(self, path: Path, number: int, row: dict[str, str | None]):
        self.path, self.line, self.row = path, number, row

    def fail(self, column: str, expected: str) -> UserError:
        return UserError(f"{self.path}:{self.line}: {column} {self.row.get(column)!r} is not {expected}")

    def arch(self) -> str:
        text = (self.row.get("arch") or "").strip()
        try:
            parse_rates_key(text)
        except UserError:
            raise self.fail(
                "arch", "an architecture (the searchable rates joined by '-', e.g. 2-5)"
            ) from None
        return text

    def integer(self, column: str, required: bool = True) -> int | None:
        text = (self.row.get(column) or "").strip()
        if not text and not required:
            return None
        if not text.isdigit():
            raise self.fail(column, "a whole number >= 0")
        return int(text)

    def number(self, column: str, required: bool = True) -> float | None:
        text = (self.row.get(column) or "").strip()
        if not text and not required:
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.fail(column, "a number") from None
        if not math.isfinite(value):
            raise self.fail(column, "finite")
        return value


def write_table(rows: Sequence[GridRow], path: Path) -> Path:
    cells = [{key: _cell(value) for key, value in asdict(row).items()} for row in rows]
    return atomic_write_csv(path, COLUMNS, cells)


def _cell(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@dataclass(frozen=True)
class ArchResult:
    """One architecture of a ground-truth table: its mIoU (and cost) over seeds."""

    arch: str
    mious: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()  # the seed of each mIoU

    def miou_of(self, seed: int) -> float | None:
        """The mIoU of retraining seed ``seed``, or None when the table has no such row."""
        return next((miou for miou, s in zip(self.mious, self.seeds, strict=False) if s == seed), None)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.mious)

    @property
    def std(self) -> float:
        return statistics.stdev(self.mious) if len(self.mious) > 1 else 0.0


@dataclass(frozen=True)
class Ranking:
    """Where a search's pick stands in a ground-truth table."""

    pick_miou: float  # the pick's mean mIoU over the table's seeds
    best_arch: str
    best_miou: float  # the best mean mIoU in the table
    regret: float  # best minus pick: 0 when the search found the best architecture of the table
    percentile: float  # share of the table's architectures whose mean is at most the pick's, in percent


def rank_pick(table: dict[str, ArchResult], arch: str) -> Ranking | None:
    """The pick ``arch`` (a rates key) against the table; None when the table does not hold it (a sampled
    table: add the pick to the grid with ``dilnas-grid include=[arch.json]``)."""
    if arch not in table:
        return None
    best = max(table.values(), key=lambda result: result.mean)
    pick = table[arch].mean
    at_most = sum(result.mean <= pick for result in table.values())
    return Ranking(pick, best.arch, best.mean, best.mean - pick, 100.0 * at_most / len(table))


def table_cost(table: dict[str, ArchResult]) -> float | None:
    """CPU-seconds of every retraining in the table; None when a row has no cost."""
    if not table or any(len(result.cpu_seconds) != len(result.mious) for result in table.values()):
        return None
    return sum(sum(result.cpu_seconds) for result in table.values())


def read_table(path: Path, branches: int | None = None) -> dict[str, ArchResult]:
    """A ground-truth CSV (``read_rows``) as {arch: mIoU over seeds}; one-line errors for a table without rows
    or whose architectures do not have ``branches`` rates."""
    rows = read_rows(path)
    if not rows:
        raise UserError(f"{path}: the ground-truth table has no rows")
    by_arch: dict[str, list[GridRow]] = {}
    for number, row in enumerate(rows, start=2):
        rates = parse_rates_key(row.arch)
        if branches is not None and len(rates) != branches:
            raise UserError(
                f"{path}:{number}: arch {row.arch!r} has {len(rates)} rates; the searched space has {branches} "
                "searchable branches (a table of another space?)"
            )
        by_arch.setdefault(row.arch, []).append(row)
    return {
        arch: ArchResult(
            arch,
            tuple(row.miou for row in group),
            tuple(row.cpu_seconds for row in group if row.cpu_seconds is not None),
            tuple(row.seed for row in group),
        )
        for arch, group in by_arch.items()
    }
