"""``dilnas-retrain``: train a fixed architecture (the paper's or a derived one) to a measured mIoU, or
evaluate a checkpoint (``eval_only=true``).

Also ``torchrun --nproc_per_node=N -m dilnas.retrain ...`` for DDP (one process per device). The run itself
is ``dilnas.train.retrain_run``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.cli import hydra_command, hydra_run, typed_config
from dilnas.spec.options import RetrainConfig
from dilnas.train.distributed import DistInfo, run_distributed
from dilnas.train.retrain_run import run_retrain
from dilnas.train.run_dir import RunDir, RunRecord


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, RetrainConfig)
    path, config_yaml, overrides = hydra_run(cfg)
    run_dir, record = RunDir(path), RunRecord(config_yaml, overrides)

    def job(device, info: DistInfo) -> float:
        outcome = run_retrain(config, device, info, run_dir, record)
        line = outcome.describe(run_dir.path)
        if info.is_main and line:
            print(line)
        return outcome.miou

    return run_distributed(config.device, job)


EXAMPLES = (
    "dilnas-retrain arch=runs/search/DATE/arch.json      # the derived network, synthetic data",
    "dilnas-retrain +experiment=cityscapes arch=exp48_decoder26 data.root=/data/cityscapes",
    "dilnas-retrain arch=exp48_decoder26 eval_only=true checkpoint=best.pt data=cityscapes data.root=/data/cityscapes",
)
main = hydra_command("dilnas-retrain", "retrain", run, EXAMPLES)

if __name__ == "__main__":
    main()
