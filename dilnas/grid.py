"""``dilnas-grid``: the ground truth of a search space, every gapless architecture (or a uniform sample)
retrained over seeds as one Hydra multirun of ``dilnas-retrain``, collected into ``ground_truth.csv``.

    dilnas-grid space=synthetic_tiny out=runs/grid/tiny
    dilnas-grid space=synthetic_deep sample=30 seeds=[0,1] out=runs/grid/deep \\
        'retrain=[trainer.max_steps=300,hydra/launcher=local_parallel]'
"""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.analysis.grid_run import run_grid
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.tool_options import GridConfig


def run(cfg: DictConfig) -> None:
    run_grid(typed_config(cfg, GridConfig))


EXAMPLES = (
    "dilnas-grid space=synthetic_tiny out=runs/grid/tiny",
    "dilnas-grid space=synthetic_deep sample=30 seeds=[0,1] out=runs/grid/deep 'retrain=[\"hydra/launcher=local_parallel\"]'",
    "dilnas-grid out=runs/grid/deep stage=collect",
)
main = hydra_command("dilnas-grid", "grid", run, EXAMPLES)

if __name__ == "__main__":
    main()
