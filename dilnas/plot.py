"""``dilnas-plot``: the evolution of the dilation-rate probabilities of a search run, or of every run of a sweep.

``dilnas-plot run_dir=RUN_OR_SWEEP_DIR [out=PATH] [dpi=120] [format=png|svg|pdf]`` prints the paths written.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.analysis.search_history import plot_evolution
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.options import PlotConfig


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, PlotConfig)
    written = plot_evolution(config.run_dir, out=config.out, dpi=config.dpi, image_format=config.format.value)
    for path in written:
        print(path)


EXAMPLES = (
    "dilnas-plot run_dir=runs/search/DATE",
    "dilnas-plot run_dir=runs/sweeps/DATE format=pdf",
)
main = hydra_command("dilnas-plot", "plot", run, EXAMPLES)

if __name__ == "__main__":
    main()
