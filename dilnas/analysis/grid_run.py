"""A ground-truth grid run (``dilnas-grid``): write the architectures, retrain the pending (architecture, seed)
pairs as one multirun of ``dilnas-retrain`` per seed, collect the table. One grid writes a directory at a time.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from dilnas.analysis.ground_truth import (
    TABLE,
    collect,
    pending_runs,
    read_manifest,
    retrain_command,
    write_grid,
)
from dilnas.analysis.ground_truth_table import write_table
from dilnas.spec.space import SearchSpace, load_space
from dilnas.spec.tool_options import GridConfig, GridStage
from dilnas.train.distributed import DistInfo
from dilnas.train.run_dir import LOCK, RunDir
from dilnas.utils.errors import UserError
from dilnas.utils.processes import run_child


def run_grid(config: GridConfig, say: Callable[[str], None] = print) -> Path:
    """Run the grid ``config`` describes (its stage); ``say`` gets the progress lines. Returns the table."""
    out = Path(config.out)
    if not config.seeds:
        raise UserError("seeds=[]: give at least one retraining seed, e.g. seeds=[0,1,2]")
    repeated = sorted({seed for seed in config.seeds if config.seeds.count(seed) > 1})
    if repeated:
        raise UserError(
            f"seeds={config.seeds}: {', '.join(map(str, repeated))} listed twice; list each seed once"
        )
    grid_dir = RunDir(out)
    if config.stage is GridStage.collect:
        read_manifest(out)
    else:
        space = load_space(config.space)
        # One grid at a time per seed of a directory: grids of other seeds may share it (one process per seed).
        locks = [f"{LOCK}-seed{seed}" for seed in config.seeds]
        try:
            for seed, name in zip(config.seeds, locks, strict=True):
                grid_dir.acquire(DistInfo(), name, f"seed {seed} of this grid")
            _write_and_train(config, space, out, say)
        finally:
            for name in locks:
                grid_dir.release(name)
        if config.stage is GridStage.write:
            return out / TABLE
    rows = collect(out)
    path = write_table(rows, out / TABLE)
    say(f"{path}: {len(rows)} finished runs")
    return path


def _write_and_train(config: GridConfig, space: SearchSpace, out: Path, say: Callable[[str], None]) -> None:
    includes = [Path(p) for p in config.include]
    files = write_grid(space, out, config.sample, config.sample_seed, includes, config.retrain)
    pending = pending_runs(out, files, config.seeds)
    count = sum(len(paths) for paths in pending.values())
    say(f"{space.name}: {len(files)} architectures x {len(config.seeds)} seeds in {out}; {count} runs to do")
    commands = [retrain_command(out, seed, paths, config.retrain) for seed, paths in pending.items()]
    if config.stage is GridStage.write:
        for command in commands:
            say(shlex.join(command))
        return
    for command in commands:
        status = run_child(command, "run the same dilnas-grid command to continue")
        if status:
            print(f"dilnas-grid: a retraining multirun exited with status {status}", file=sys.stderr)
