"""``dilnas-grid``: the ground truth of a search space, every gapless architecture (or a uniform sample)
retrained over seeds as one Hydra multirun of ``dilnas-retrain``, collected into ``ground_truth.csv``.

    dilnas-grid space=synthetic_tiny out=runs/grid/tiny
    dilnas-grid space=synthetic_deep sample=30 seeds=[0,1] out=runs/grid/deep \\
        'retrain=[trainer.max_steps=300,hydra/launcher=local_parallel]'
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig

from dilnas.analysis.ground_truth import (
    TABLE,
    collect,
    pending_runs,
    read_manifest,
    retrain_command,
    write_grid,
)
from dilnas.analysis.ground_truth_table import write_table
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.space import load_space
from dilnas.spec.tool_options import GridConfig, GridStage
from dilnas.utils.errors import UserError
from dilnas.utils.processes import run_child


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, GridConfig)
    out = Path(config.out)
    if not config.seeds:
        raise UserError("seeds=[]: give at least one retraining seed, e.g. seeds=[0,1,2]")
    repeated = sorted({seed for seed in config.seeds if config.seeds.count(seed) > 1})
    if repeated:
        raise UserError(
            f"seeds={config.seeds}: {', '.join(map(str, repeated))} listed twice; list each seed once"
        )
    if config.stage in (GridStage.all, GridStage.write):
        space = load_space(config.space)
        files = write_grid(
            space, out, config.sample, config.sample_seed, [Path(p) for p in config.include], config.retrain
        )
        pending = pending_runs(out, files, config.seeds)
        count = sum(len(paths) for paths in pending.values())
        print(
            f"{space.name}: {len(files)} architectures x {len(config.seeds)} seeds in {out}; {count} runs to do"
        )
        commands = [retrain_command(out, seed, paths, config.retrain) for seed, paths in pending.items()]
        if config.stage is GridStage.write:
            for command in commands:
                print(shlex.join(command))
            return
        for command in commands:
            status = run_child(command, "run the same dilnas-grid command to continue")
            if status:
                print(f"dilnas-grid: a retraining multirun exited with status {status}", file=sys.stderr)
    else:
        read_manifest(out)
    rows = collect(out)
    path = write_table(rows, out / TABLE)
    print(f"{path}: {len(rows)} finished runs")


EXAMPLES = (
    "dilnas-grid space=synthetic_tiny out=runs/grid/tiny",
    "dilnas-grid space=synthetic_deep sample=30 seeds=[0,1] out=runs/grid/deep 'retrain=[\"hydra/launcher=local_parallel\"]'",
    "dilnas-grid out=runs/grid/deep stage=collect",
)
main = hydra_command("dilnas-grid", "grid", run, EXAMPLES)

if __name__ == "__main__":
    main()
