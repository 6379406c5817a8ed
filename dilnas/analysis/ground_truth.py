"""Ground truth for a search space: every gapless architecture (or a uniform sample) retrained over seeds.

``write_grid`` writes each architecture as arch JSON under ``<out>/archs/`` with a manifest
(``grid.json``); ``pending_runs`` lists the (architecture, seed) pairs without a finished run and
``retrain_command`` is the Hydra multirun of ``dilnas-retrain`` over one seed's pending architectures (any
launcher: the overrides are the user's); ``collect`` reads the finished runs under ``<out>/runs/``
into one row per (architecture, seed) and ``write_table`` writes them as CSV. A search's pick is then
ranked against the table (``regret``, ``percentile``; ``dilnas.analysis.sweep_summary``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dilnas.analysis.ground_truth_table import GridRow, read_rows
from dilnas.spec.arch import load_arch, save_arch
from dilnas.spec.gapless import count_gapless, parse_rates_key, rates_key, sample_gapless
from dilnas.spec.options import RetrainConfig
from dilnas.spec.space import SearchSpace
from dilnas.train.run_dir import RunDir, find_runs
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json

MANIFEST = "grid.json"
TABLE = "ground_truth.csv"
ARCH_DIR = "archs"
RUNS_DIR = "runs"
# dilnas-retrain overrides that may differ between the runs of one grid (where the data is, the machine's
# processes): everything else is the grid's recipe.
RECIPE_MAY_CHANGE = ("hydra/", "hydra.", "data.root=", "data.num_workers=", "data.cache=", "device=")


def rates_in_space(space: SearchSpace, path: Path) -> tuple[int, ...]:
    """The searchable rates of an architecture file that is a point of ``space``; UserError otherwise."""
    arch = load_arch(path)
    not_in_space = UserError(f"include: {path} is not an architecture of search space {space.name}")
    if len(arch.blocks) != len(space.base.blocks):
        raise not_in_space
    dilations = [arch.blocks[b.block].dilations for b in space.branches]
    if any(len(rates) <= b.branch for rates, b in zip(dilations, space.branches, strict=True)):
        raise not_in_space
    rates = tuple(rates[b.branch] for rates, b in zip(dilations, space.branches, strict=True))
    if any(rate not in b.candidates for rate, b in zip(rates, space.branches, strict=True)):
        raise not_in_space
    if space.arch_with(rates).blocks != arch.blocks:
        raise UserError(
            f"include: {path} differs from search space {space.name} outside its searchable rates"
        )
    return rates


def recipe_of(overrides: Sequence[str]) -> list[str]:
    """The retraining recipe in ``dilnas-grid retrain=[...]``: the overrides that change what a run computes,
    so not where the data lies, how many loader processes or which launcher (those may change between
    machines)."""
    return sorted(item for item in overrides if not item.lstrip("+~").startswith(RECIPE_MAY_CHANGE))


def check_same_grid(out_dir: Path, space: SearchSpace, overrides: Sequence[str]) -> None:
    """Refuse, before anything is written, a grid directory holding a grid of another space or recipe (its
    rows would mix with this one's in one table). A manifest older than the recorded recipe takes any."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return
    manifest = read_manifest(out_dir)
    if (manifest.get("space"), manifest.get("space_digest")) != (space.name, space.digest):
        raise UserError(
            f"out={out_dir} holds the grid of another search space ({manifest.get('space')}, digest "
            f"{str(manifest.get('space_digest'))[:12]}; this is {space.name}, {space.digest[:12]}): choose another out="
        )
    recorded = manifest.get("recipe")
    if recorded is not None and recorded != recipe_of(overrides):
        raise UserError(
            f"out={out_dir} was retrained with retrain={recorded}; this command asks {recipe_of(overrides)}: keep "
            "one recipe per grid directory (choose another out=)"
        )


def write_grid(
    space: SearchSpace,
    out_dir: Path,
    sample: int | None,
    sample_seed: int,
    include: Sequence[Path] = (),
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Write every gapless architecture of ``space`` (or ``sample`` drawn uniformly, plus the ``include``
    files, e.g. search picks to rank) and the manifest, which records the retraining recipe of ``overrides``
    (``check_same_grid`` first)."""
    check_same_grid(out_dir, space, overrides)
    total = count_gapless(space.base, space.branches)
    if sample is not None and sample < 1:
        raise UserError(f"sample={sample}: expected a number of architectures >= 1, or null for all")
    extra = [rates_in_space(space, path) for path in include]
    drawn = sample_gapless(space.base, space.branches, total if sample is None else sample, sample_seed)
    assignments = sorted({*drawn, *extra})
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
            "included": [rates_key(rates) for rates in extra],
            "recipe": recipe_of(overrides),
            "archs": entries,
        },
    )
    return files


def pending_runs(out_dir: Path, arch_files: Sequence[Path], seeds: Sequence[int]) -> dict[int, list[Path]]:
    """Per seed, the grid's architectures that have no finished run for it yet."""
    done = {(row.arch, row.seed) for row in collect(out_dir)}
    key_of = {entry["file"]: entry["arch"] for entry in read_manifest(out_dir)["archs"]}
    keys = [key_of[f"{ARCH_DIR}/{path.name}"] for path in arch_files]
    pending = {
        seed: [path for path, key in zip(arch_files, keys, strict=True) if (key, seed) not in done]
        for seed in seeds
    }
    return {seed: paths for seed, paths in pending.items() if paths}


def retrain_command(
    out_dir: Path, seed: int, arch_files: Sequence[Path], overrides: Sequence[str]
) -> list[str]:
    """The multirun of ``dilnas-retrain`` over ``arch_files`` for one seed.

    Each job's run directory is ``runs/<architecture file stem>/seed<seed>`` and ``resume=true``, so the grid
    continues where it stopped: finished runs are skipped (``pending_runs``), a stopped one resumes from its
    checkpoint.
    """
    return [
        *(sys.executable, "-m", "dilnas.retrain", "-m", f"seed={seed}"),
        "arch=" + ",".join(str(path) for path in arch_files),
        "resume=true",
        f"hydra.sweep.dir={out_dir / RUNS_DIR}",
        "hydra.sweep.subdir='${dilnas_stem:${arch}}/seed${seed}'",
        *overrides,
    ]


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
    """One row per finished (architecture, seed) run below ``<out>/runs``; unfinished runs are left out.

    Rows of an existing ``<out>/ground_truth.csv`` whose runs are not there (a table carried over from
    another machine) are kept, and count as finished: a grid continues from its table alone.
    """
    branches = [(entry["block"], entry["branch"]) for entry in read_manifest(out_dir)["branches"]]
    rows = _collect_runs(out_dir, branches)
    found = {(row.arch, row.seed) for row in rows}
    table = out_dir / TABLE
    carried = read_rows(table) if table.is_file() else []
    rows += [row for row in carried if (row.arch, row.seed) not in found]
    return sorted(rows, key=lambda row: (parse_rates_key(row.arch), row.seed))


def _collect_runs(out_dir: Path, branches: list[tuple[int, int]]) -> list[GridRow]:
    rows = []
    for run in find_runs(out_dir / RUNS_DIR):
        final = final_eval(RunDir(run).metrics)
        if final is None:
            continue
        config = RunDir(run).read_config(RetrainConfig)
        arch = load_arch(RunDir(run).arch, allow_gaps=True)
        rates = [arch.blocks[block].dilations[branch] for block, branch in branches]
        rows.append(
            GridRow(
                arch=rates_key(rates),
                seed=config.seed,
                miou=float(final["val/miou"]),
                steps=int(final["step"]),
                field_of_view=arch.field_of_view,
                cpu_seconds=final.get("cpu_seconds"),
                wall_seconds=final.get("wall_seconds"),
                run=run.relative_to(out_dir).as_posix(),
                resumes=final.get("resumes"),
                cpu_model=final.get("cpu_model"),
                torch_version=final.get("torch_version"),
                threads=final.get("threads"),
            )
        )
    return rows


def final_eval(path: Path) -> dict[str, Any] | None:
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
