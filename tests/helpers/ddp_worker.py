"""Run by the DDP tests under torchrun on CPU (gloo): a few steps of retraining or of the search, then each
rank saves its weights (and logits) and the all-reduced evaluation so the test can compare ranks.

    torchrun --nproc_per_node=2 tests/helpers/ddp_worker.py OUT_DIR retrain|search
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import Subset

from dilnas.data.factory import build_dataset
from dilnas.models.regseg import RegSeg
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import load_arch
from dilnas.spec.options import DataConfig, LossConfig, OptimConfig, SearchConfig, TrainerConfig
from dilnas.spec.space import load_space
from dilnas.train.distributed import init_distributed, shutdown_distributed
from dilnas.train.run_dir import RunDir
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchData, SearchTrainer
from dilnas.train.trainer import Recipe, TrainData, Trainer, TrainSetup

REPO = Path(__file__).resolve().parents[2]  # a script, run without the tests package: no tests.helpers
DATA = DataConfig(
    image_size=64, context_distance=8, train_samples=32, val_samples=9, num_workers=0
)  # 9: shards 5+4
NAMES = ("background", "red", "green")


def setup(out: Path, info) -> TrainSetup:
    return TrainSetup(RunDir(out), torch.device("cpu"), seed=0, info=info)


def recipe(max_steps: int) -> Recipe:
    trainer = TrainerConfig(max_steps=max_steps, batch_size=4, eval_every_epochs=1000)
    return Recipe(trainer, OptimConfig(warmup_steps=2), LossConfig())


def retrain(out: Path, info) -> Trainer:
    model = RegSeg(load_arch(REPO / "experiments" / "synthetic" / "tiny_rate1.json"))
    data = TrainData(build_dataset(DATA, "train", True), build_dataset(DATA, "val", False), NAMES)
    return Trainer(model, data, setup(out, info), recipe(6))


def search(out: Path, info) -> SearchTrainer:
    config = SearchConfig(warmup_epochs=0, arch_lr=0.05, relaxation="gumbel")
    train, plain = build_dataset(DATA, "train", True), build_dataset(DATA, "train", False)
    kept, heldout = split_indices(len(train), 0.5, seed=0)
    data = SearchData(Subset(train, kept), Subset(train, heldout), Subset(plain, heldout), list(NAMES))
    supernet = SuperNet(load_space("synthetic_tiny"), "gumbel")
    return SearchTrainer(supernet, data, setup(out, info), recipe(4), config)


def main(out: Path, mode: str) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    trainer = {"retrain": retrain, "search": search}[mode](out, info)
    summary = trainer.fit()
    torch.save(
        {"model": trainer.bare_model.state_dict(), "miou": summary["miou"]}, out / f"rank{info.rank}.pt"
    )
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
