"""``dilnas-plot``: the evolution of the dilation-rate probabilities of a search run, or of every run of a sweep.

``dilnas-plot run_dir=RUN_OR_SWEEP_DIR [out=PATH] [dpi=120] [format=png|svg|pdf]`` prints the paths written.
A run gets a heat map per searchable branch (probability of each rate over epochs, the derived rate boxed,
the warm-up hatched) and its field of view; a sweep also gets one overview of every run's expected rates,
labelled by the overrides that differ between its jobs (``dilnas.analysis.search_figures``). ``out``'s
suffix (.png, .svg, .pdf) picks the format; ``format`` serves the default file names.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.analysis.search_figures import plot_evolution
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.tool_options import PlotConfig


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, PlotConfig)
    written = plot_evolution(config.run_dir, out=config.out, dpi=config.dpi, image_format=config.format)
    for path in written:
        print(path)


EXAMPLES = (
    "dilnas-plot run_dir=runs/search/DATE",
    "dilnas-plot run_dir=runs/search/DATE out=figures/search.pdf",
    "dilnas-plot run_dir=runs/sweeps/DATE format=svg",
)
main = hydra_command("dilnas-plot", "plot", run, EXAMPLES)

if __name__ == "__main__":
    main()
