"""``dilnas-search``: the bilevel dilation search; writes the derived ``arch.json`` into the run directory.

With no arguments it searches the small space on the built-in synthetic data on a CPU in minutes.
Sweeps: ``dilnas-search -m seed=0,1,2``. DDP: ``torchrun --nproc_per_node=N -m dilnas.search ...``.
The search itself is ``dilnas.train.search_run``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.cli import hydra_command, hydra_run, typed_config
from dilnas.spec.options import SearchRunConfig
from dilnas.train.distributed import DistInfo, run_distributed
from dilnas.train.run_dir import RunDir, RunRecord
from dilnas.train.search_run import run_search
from dilnas.train.trainer import TrainSetup


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, SearchRunConfig)
    path, config_yaml, overrides = hydra_run(cfg)
    run_dir, record = RunDir(path), RunRecord(config_yaml, overrides)

    def job(device, info: DistInfo) -> float:
        found = run_search(config, TrainSetup(run_dir, device, config.seed, info), record)
        if info.is_main:
            print(found.describe())
        return found.miou

    return run_distributed(config.device, job)


EXAMPLES = (
    "dilnas-search                                         # synthetic_tiny on the synthetic data, minutes on a CPU",
    "dilnas-search search.space=regseg_exp48 data=cityscapes data.root=/data/cityscapes device=cuda",
    "dilnas-search -m seed=0,1,2 search.relaxation=softmax,gumbel   # a sweep, then its report",
)
main = hydra_command("dilnas-search", "search", run, EXAMPLES)

if __name__ == "__main__":
    main()
