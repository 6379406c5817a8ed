"""Run by tests/test_retrain.py under torchrun: a few DDP steps on CPU (gloo), then each rank saves its
weights and the all-reduced evaluation so the test can compare ranks."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dilnas.arch import load_arch
from dilnas.config import DataConfig, LossConfig, OptimConfig, TrainerConfig
from dilnas.data.factory import build_dataset
from dilnas.dist import init_distributed, shutdown_distributed
from dilnas.engine import Trainer
from dilnas.regseg import RegSeg

REPO = Path(__file__).resolve().parent.parent


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    data = DataConfig(
        image_size=64, context_distance=8, train_samples=32, val_samples=9, num_workers=0
    )  # 9: shards of 5 and 4
    model = RegSeg(load_arch(REPO / "experiments" / "synthetic" / "tiny_rate1.json"))
    trainer = Trainer(
        model,
        build_dataset(data, "train", True),
        build_dataset(data, "val", False),
        ("background", "red", "green"),
        out,
        TrainerConfig(max_steps=6, batch_size=4, eval_every_epochs=1000),
        OptimConfig(warmup_steps=2),
        LossConfig(),
        torch.device("cpu"),
        seed=0,
        info=info,
    )
    summary = trainer.fit()
    torch.save(
        {"model": trainer.bare_model.state_dict(), "miou": summary["miou"]}, out / f"rank{info.rank}.pt"
    )
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
