"""A retraining run: a fixed architecture (the paper's or a derived one) trained to a measured mIoU in one run
directory, or a checkpoint evaluated (``eval_only=true``). ``dilnas-retrain`` and ``dilnas.api.retrain`` both
call ``run_retrain``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dilnas.data.dataset import LabelledDataset
from dilnas.data.factory import build_dataset, normalisation, train_input_size
from dilnas.models.initialize import (
    NORMALISATION_ENTRY,
    arch_entry,
    initialize_from,
    load_dilnas_weights,
)
from dilnas.models.memory import check_memory
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec, load_arch, save_arch
from dilnas.spec.options import RetrainConfig
from dilnas.train.distributed import DistInfo
from dilnas.train.run_dir import ARCH, RunDir, RunRecord
from dilnas.train.trainer import (
    Recipe,
    TrainData,
    Trainer,
    TrainingDiverged,
    TrainSetup,
    eval_loader,
    evaluate,
)
from dilnas.utils.checkpoints import seed_everything
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json, dumps_json

log = logging.getLogger("dilnas")
RESUME_SAME = ("data", "seed")  # with the architecture: what a resumed run must share with its checkpoint


@dataclass(frozen=True)
class RetrainOutcome:
    """A retraining's (or an evaluation's) result on the evaluation split."""

    arch: ArchSpec
    split: str
    miou: float  # at the end of the run (nan when it logged no evaluation)
    checkpoint: Path  # checkpoints/best.pt of the run, or the checkpoint evaluated
    step: int | None = None  # training: the last step; None for eval_only
    best_miou: float | None = None  # training: the best evaluation of the run
    miou_reduced: float | None = None  # eval_only on Cityscapes' 19 classes: the paper's mIoU^R

    def describe(self, run_dir: Path) -> str | None:
        """The line ``dilnas-retrain`` (and ``dilnas.api.retrain``) prints at the end; None when nothing was
        evaluated."""
        if self.step is None:  # eval_only
            reduced = f", mIoU^R {self.miou_reduced:.2f}" if self.miou_reduced is not None else ""
            return f"{self.checkpoint}: {self.split} mIoU {self.miou:.2f}{reduced}"
        if math.isnan(self.miou):
            return None
        return (
            f"{self.arch.name}: {self.split} mIoU {self.miou:.2f} at step {self.step} "
            f"(best {self.best_miou:.2f}); run directory {run_dir}"
        )


def run_retrain(
    config: RetrainConfig, device: torch.device, info: DistInfo, run_dir: RunDir, record: RunRecord
) -> RetrainOutcome:
    try:
        return _run_retrain(config, device, info, run_dir, record)
    except TrainingDiverged:
        raise  # its metrics show what diverged: kept
    except UserError:
        run_dir.discard_unfinished()  # refused before its first checkpoint: nothing left behind
        raise
    finally:
        run_dir.release()  # the run directory's lock, taken when the run started


def _run_retrain(
    config: RetrainConfig, device: torch.device, info: DistInfo, run_dir: RunDir, record: RunRecord
) -> RetrainOutcome:
    seed_everything(config.seed)
    spec = load_arch(config.arch, allow_gaps=config.allow_gaps)
    if config.eval_only:
        eval_set = build_dataset(config.data, config.data.eval_split, train=False)
        return evaluate_checkpoint(
            config, fit_classes(spec, eval_set, config.data.name.value), eval_set, device, info, run_dir
        )
    # Class-uniform sampling may read every label map of the training split once (then cached): the
    # architecture is checked before, and an evaluation-only run never builds the training set.
    train_set = build_dataset(config.data, config.data.train_split, train=True, resampled=True)
    eval_set = build_dataset(config.data, config.data.eval_split, train=False)
    spec = fit_classes(spec, train_set, config.data.name.value)
    data = TrainData(
        train_set,
        eval_set,
        train_set.class_names,
        num_workers=config.data.num_workers,
        class_colours=train_set.class_colours,
    )
    return train(config, spec, data, TrainSetup(run_dir, device, config.seed, info), record)


def fit_classes(spec: ArchSpec, dataset: LabelledDataset, data_name: str) -> ArchSpec:
    """``spec`` with a classifier for ``dataset``'s classes."""
    if spec.num_classes == dataset.num_classes:
        return spec
    log.info("%s has %d classes: the classifier is built for them", data_name, dataset.num_classes)
    return spec.with_num_classes(dataset.num_classes)


def evaluate_checkpoint(
    config: RetrainConfig,
    spec: ArchSpec,
    eval_set: LabelledDataset,
    device: torch.device,
    info: DistInfo,
    run_dir: RunDir,
) -> RetrainOutcome:
    """``eval_only=true``: the evaluation split's mIoU of a checkpoint, written to ``eval.json``."""
    path = Path(config.checkpoint) if config.checkpoint else run_dir.best
    check_memory(lambda: RegSeg(spec), None, device, spec.name)
    model = RegSeg(spec)
    load_dilnas_weights(model, path)
    loader = eval_loader(eval_set, config.trainer.eval_batch_size, config.data.num_workers, info)
    summary = evaluate(model.to(device), loader, len(eval_set.class_names), device).summary(
        eval_set.class_names
    )
    if info.is_main:
        atomic_write_json(run_dir.eval, {"checkpoint": str(path), "split": config.data.eval_split, **summary})
    return RetrainOutcome(
        spec, config.data.eval_split, summary["miou"], path, miou_reduced=summary.get("miou_reduced")
    )


def train(
    config: RetrainConfig, spec: ArchSpec, data: TrainData, setup: TrainSetup, record: RunRecord
) -> RetrainOutcome:
    """Train ``spec`` from scratch, from ``init=`` weights, or on from the run's last checkpoint."""
    size = train_input_size(config.data)
    shape = (config.trainer.batch_size, spec.stem.in_channels, *size) if size else None
    check_memory(lambda: RegSeg(spec), shape, setup.device, f"training {spec.name}")
    model = RegSeg(spec)
    if config.init and not config.resume:
        reinitialised = initialize_from(model, config.init)
        suffix = f" (re-initialised {', '.join(reinitialised)})" if reinitialised else ""
        log.info("initialised from %s%s", config.init, suffix)
    trainer = Trainer(
        model,
        data,
        setup,
        Recipe(config.trainer, config.optim, config.loss),
        extra_state={**arch_entry(spec), NORMALISATION_ENTRY: normalisation(config.data)},
    )
    # The trainer checks its settings without touching the disk; only then is the run directory written.
    setup.run_dir.start(
        config.resume,
        record,
        setup.info,
        same=RESUME_SAME,
        files={ARCH: dumps_json(spec.to_dict())},
        command="dilnas-retrain",
    )
    if setup.info.is_main:
        save_arch(spec, setup.run_dir.arch)
    if config.resume:
        trainer.resume()
    summary = trainer.fit()
    return RetrainOutcome(
        spec,
        config.data.eval_split,
        summary.get("miou", float("nan")),
        setup.run_dir.best,
        step=trainer.state.step,
        best_miou=trainer.state.best_miou,
    )
