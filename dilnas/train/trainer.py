"""The retraining loop and evaluation: SGD with warm-up + poly, mixed precision, DDP, checkpoints and resume.

A run is exactly reproducible on CPU: the data order and every augmentation are functions of
(seed, epoch, index) (``dilnas.train.sampling``), and checkpoints hold everything else, so a run killed at any
point and resumed from its last checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import collections
import logging
import math
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dilnas.models.initialize import class_entries
from dilnas.spec.options import EvalSchedule, LossConfig, OptimConfig, TrainerConfig
from dilnas.train.distributed import DistInfo, broadcast_buffers
from dilnas.train.losses import build_loss
from dilnas.train.metrics import ConfusionMatrix
from dilnas.train.precision import FULL, Precision, resolve_precision
from dilnas.train.previews import prediction_panels
from dilnas.train.run_dir import BEST, LAST, METRICS, RunDir
from dilnas.train.run_log import RunLogger
from dilnas.train.sampling import ResumableDistributedSampler, SeededAugmentation, dataset_length
from dilnas.train.schedule import parameter_groups, warmup_poly_scheduler
from dilnas.train.signals import StopSignals
from dilnas.utils.checkpoints import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dilnas.utils.errors import UserError
from dilnas.utils.machine import machine_record
from dilnas.utils.progress import bars_beside_logging, progress_bar

log = logging.getLogger("dilnas")
PROGRESS_WINDOW = 6  # progress lines whose steps and times give the rate and the ETA
OFFICIAL_EVAL_EVERY, OFFICIAL_EVAL_LAST = 25, 30  # trainer.eval_schedule=official (epochs)
SYNC_BN_BELOW = 4  # per-process batches under this, without SyncBatchNorm, get a warning under DDP


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainState:
    step: int = 0
    best_miou: float = -1.0
    last_eval: dict[str, Any] | None = None  # the latest evaluation summary (what a finished run returns)
    wall_seconds: float = 0.0  # training time so far, over every resume (the cost of the run)
    cpu_seconds: float = 0.0  # CPU time of this process so far (all its threads), over every resume
    resumes: int = 0  # how many times the run was continued from a checkpoint


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int, info: DistInfo) -> DataLoader:
    """Each rank takes every world_size-th sample, without padding, so no sample counts twice."""
    indices = list(range(info.rank, dataset_length(dataset), info.world_size))
    return DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    precision: Precision = FULL,
    with_loss: bool = False,
    progress: str | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of argmax predictions over ``loader`` (forward passes in ``precision``), summed over
    all ranks; with ``with_loss`` it also holds the mean per-pixel cross-entropy. ``progress``: the
    description of a progress bar over the batches (on a terminal; none when None)."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(num_classes, device)
    with progress_bar(len(loader), progress or "", unit="batch", enabled=progress is not None) as bar:
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with precision.autocast():
                logits = model(images)
            matrix.update(logits.argmax(1), labels)
            if with_loss:
                matrix.add_loss(logits, labels)
            bar.update()
    matrix.all_reduce()
    model.train(was_training)
    return matrix


@dataclass
class TrainData:
    """What a run trains and evaluates on."""

    train_set: Dataset
    eval_set: Dataset
    class_names: Sequence[str]
    num_workers: int = 0
    class_colours: Sequence[tuple[int, int, int]] | None = None  # the data's own colours, if it has them


@dataclass
class TrainSetup:
    """Where and how a run trains: its directory, device, seed and place in a DDP job."""

    run_dir: RunDir
    device: torch.device
    seed: int
    info: DistInfo = field(default_factory=DistInfo)


@dataclass
class Recipe:
    """How long, with what optimiser and loss (the ``trainer``, ``optim`` and ``loss`` config groups)."""

    trainer: TrainerConfig
    optim: OptimConfig
    loss: LossConfig


class Trainer:
    """Trains ``model`` on ``data.train_set``, evaluates on ``data.eval_set``, writes into ``setup.run_dir``.

    ``exclude``: parameters the weight optimizer must not touch (the search's logits); ``logs``: the JSON-lines
    files of the run directory (rewound together on resume); ``extra_state``: constant entries saved in every
    checkpoint (the retrained architecture).
    """

    # Where every evaluation shows a few evaluation images beside their ground truth and prediction
    # (``dilnas.train.previews``); None: not shown (the searches evaluate on held-out training images, and
    # ``val/`` is only ever the evaluation split).
    overlay_tag: str | None = "val/overlays"
    overlay_samples = 4
    progress_label = "train"  # the progress bar's description on a terminal (``dilnas.utils.progress``)

    def __init__(
        self,
        model: nn.Module,
        data: TrainData,
        setup: TrainSetup,
        recipe: Recipe,
        *,
        exclude: Sequence[nn.Parameter] = (),
        find_unused_parameters: bool = False,
        logs: Sequence[str] = (METRICS,),
        extra_state: dict[str, Any] | None = None,
    ):
        trainer, optim = recipe.trainer, recipe.optim
        self.info, self.device, self.seed, self.run_dir = setup.info, setup.device, setup.seed, setup.run_dir
        self.config = trainer
        self.class_names = list(data.class_names)
        self.class_colours = data.class_colours
        # Every checkpoint names the classes (and their colours, where the data has its own): predict and
        # deploy colour and list them.
        self.extra_state = {**class_entries(self.class_names, self.class_colours), **(extra_state or {})}
        self.precision = resolve_precision(trainer.amp, trainer.amp_dtype, self.device)
        self.model = self._wrap(model, trainer.sync_bn, find_unused_parameters)
        self.train_set = SeededAugmentation(data.train_set, self.seed)
        self.sampler = ResumableDistributedSampler(
            dataset_length(data.train_set), self.seed, self.info.rank, self.info.world_size
        )
        self.num_workers = data.num_workers
        self.steps_per_epoch = len(self.sampler) // trainer.batch_size  # drop_last
        if self.steps_per_epoch < 1:
            raise UserError(
                f"trainer.batch_size={trainer.batch_size} is larger than the {len(self.sampler)} training "
                f"samples per process: lower it or add data"
            )
        self.total_steps = trainer.max_steps or trainer.epochs * self.steps_per_epoch
        self.eval_loader = eval_loader(data.eval_set, trainer.eval_batch_size, data.num_workers, self.info)
        self.eval_set = data.eval_set
        loss = recipe.loss
        self.criterion = build_loss(loss.name, loss.bootstrap_threshold, loss.bootstrap_fraction)
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.bare_model, optim.weight_decay, exclude=exclude),
            lr=optim.lr,
            momentum=optim.momentum,
        )
        self.scheduler = warmup_poly_scheduler(
            self.optimizer, self.total_steps, optim.warmup_steps, optim.warmup_factor, optim.poly_power
        )
        self.scaler = self.precision.grad_scaler()
        self.state = TrainState()
        self._clock: tuple[float, float] | None = None  # (wall, cpu) at the last tick of the run's cost
        self.logger = RunLogger(self.run_dir, enabled=self.info.is_main, jsonl=logs)

    def _wrap(self, model: nn.Module, sync_bn: bool, find_unused_parameters: bool) -> nn.Module:
        """The model on its device; under DDP wrapped (after SyncBatchNorm conversion, if asked)."""
        model = model.to(self.device)
        if not self.info.enabled:
            return model
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif self.config.batch_size < SYNC_BN_BELOW and self.info.is_main:
            log.warning(
                "trainer.batch_size=%d per process without trainer.sync_bn: each BatchNorm sees %d images (the "
                "official run sees 8 on one GPU); add trainer.sync_bn=true",
                self.config.batch_size,
                self.config.batch_size,
            )
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )

    # ---- hooks for subclasses (the search loop), called after construction ------------------------
    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what a subclass added to ``checkpoint_state``."""

    def after_step(self, epoch: int, epoch_finished: bool) -> None:
        """Called after every training step, before evaluation and checkpointing."""

    @property
    def bare_model(self) -> nn.Module:
        return (
            self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        )

    # ---- checkpoints -----------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": "dilnas.checkpoint",
            "model": self.bare_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "step": self.state.step,
            "best_miou": self.state.best_miou,
            "last_eval": self.state.last_eval,
            "cost": {"wall_seconds": self.state.wall_seconds, "cpu_seconds": self.state.cpu_seconds},
            "resumes": self.state.resumes,
            **self.extra_state,
        }

    def save(self, name: str) -> None:
        self._tick()
        if self.info.is_main:
            save_checkpoint(self.run_dir.checkpoints / name, self.checkpoint_state())

    def resume(self) -> bool:
        """Continue from the run directory's last checkpoint when it exists; returns whether it did."""
        path = self.run_dir.resume_checkpoint()
        if path is None:
            log.info("resume=true but %s has no checkpoint yet: starting from step 0", self.run_dir.path)
            return False
        state = load_checkpoint(path)
        self.bare_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved unscaled (full precision or bfloat16)
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        cost = state.get("cost", {})
        self.state = TrainState(
            int(state["step"]),
            float(state["best_miou"]),
            state.get("last_eval"),
            float(cost.get("wall_seconds", 0.0)),
            float(cost.get("cpu_seconds", 0.0)),
            int(state.get("resumes", 0)) + 1,
        )
        self.load_extra_state(state)
        self.logger.rewind(self.state.step)
        log.info("resumed from %s at step %d/%d", path, self.state.step, self.total_steps)
        return True

    # ---- loop ------------------------------------------------------------------------------------
    def _train_loader(self, epoch: int, start_batch: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start_batch, self.config.batch_size)
        self.train_set.epoch = epoch
        return DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
        )

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with self.precision.autocast():
            loss = self.criterion(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.state.step += 1
        value = loss.item()  # the step's one host sync, after the whole step is queued
        if not math.isfinite(value):  # the weights in memory are spoilt; nothing has been saved from them
            raise TrainingDiverged(
                f"non-finite loss ({value}) at step {self.state.step}: stopped; the last good "
                f"checkpoint is {self.run_dir.last} (try a lower optim.lr)"
            )
        return value

    def measure(self) -> tuple[dict[str, Any], dict[str, float]]:
        """Evaluate: (summary with at least ``miou`` and ``iou``, scalars to log).

        Under DDP every rank evaluates the bare model with rank 0's BatchNorm statistics: a DDP forward is a
        collective (it broadcasts buffers), and ranks may hold unequal numbers of evaluation batches."""
        broadcast_buffers(self.bare_model, self.info)
        matrix = evaluate(
            self.bare_model,
            self.eval_loader,
            len(self.class_names),
            self.device,
            self.precision,
            progress="evaluate" if self.info.is_main else None,
        )
        summary = matrix.summary(self.class_names)
        scalars = {"val/miou": summary["miou"], "val/pixel_accuracy": summary["pixel_accuracy"]}
        if "miou_reduced" in summary:
            scalars["val/miou_reduced"] = summary["miou_reduced"]
        scalars |= {f"val/iou/{name}": value for name, value in summary["iou"].items() if value is not None}
        return summary, scalars

    def log_overlays(self) -> None:
        """The first ``overlay_samples`` evaluation images | ground truth | prediction, as one TensorBoard image
        under ``overlay_tag`` (rank 0 only: a handful of forward passes of the bare model, in the precision
        the evaluation uses)."""
        if self.overlay_tag is None or not self.info.is_main:
            return
        with self.precision.autocast():
            panels = prediction_panels(
                self.bare_model,
                self.eval_set,
                self.class_names,
                self.device,
                self.overlay_samples,
                colours=self.class_colours,
            )
        if panels is not None:
            self.logger.add_image(self.overlay_tag, panels, self.state.step)

    def _tick(self) -> None:
        """Add the time since the last tick to the run's cost (kept in the checkpoint)."""
        wall, cpu = time.monotonic(), time.process_time()
        if self._clock is not None:
            self.state.wall_seconds += wall - self._clock[0]
            self.state.cpu_seconds += cpu - self._clock[1]
        self._clock = (wall, cpu)

    def run_evaluation(self) -> dict[str, Any]:
        summary, scalars = self.measure()
        self._tick()
        summary["wall_seconds"], summary["cpu_seconds"] = self.state.wall_seconds, self.state.cpu_seconds
        epoch = self.state.step / self.steps_per_epoch
        self.logger.log(
            self.state.step,
            scalars,
            kind="eval",
            epoch=epoch,
            final=self.state.step >= self.total_steps,  # the run's last evaluation: it has finished
            wall_seconds=round(self.state.wall_seconds, 3),
            cpu_seconds=round(self.state.cpu_seconds, 3),
            resumes=self.state.resumes,
            **machine_record(),
        )
        self.log_overlays()
        is_best = summary["miou"] > self.state.best_miou
        if is_best:
            self.state.best_miou = summary["miou"]
        self.state.last_eval = summary
        log.info(
            "eval step %d: mIoU %.2f (best %.2f)  %s",
            self.state.step,
            summary["miou"],
            self.state.best_miou,
            "  ".join(f"{n} {v:.1f}" for n, v in summary["iou"].items() if v is not None),
        )
        self.save(LAST)  # holds the updated best_miou
        if is_best:
            self.save(BEST)
        return summary

    def fit(self) -> dict[str, Any]:
        """Train to ``total_steps``; returns the last evaluation summary.

        A stop signal (``dilnas.train.signals``) saves ``last.pt`` at the next step boundary and then either
        raises ``RunInterrupted`` or hands the signal to the job scheduler's handler."""
        summary: dict[str, Any] = dict(self.state.last_eval or {})  # a finished run resumed returns it again
        started, start_step = time.monotonic(), self.state.step
        self._clock = None
        self._recent: collections.deque[tuple[float, int]] = collections.deque(
            [(started, start_step)], maxlen=PROGRESS_WINDOW
        )
        self._tick()
        if self.precision.enabled:
            log.info("computing in %s on %s", self.precision, self.device)
        bar = progress_bar(
            self.total_steps, self.progress_label, self.state.step, "step", enabled=self.info.is_main
        )
        try:
            with StopSignals() as stop, bar, bars_beside_logging(bar):
                while self.state.step < self.total_steps:
                    epoch, start_batch = divmod(self.state.step, self.steps_per_epoch)
                    for images, labels in self._train_loader(epoch, start_batch):
                        loss = self.train_step(images, labels)
                        step = self.state.step
                        bar.update()
                        if step % self.config.log_every_steps == 0 or step == self.total_steps:
                            self._log_progress(loss, epoch, started, start_step)
                            bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", refresh=False)
                        finished = step >= self.total_steps
                        self.after_step(epoch, finished or step % self.steps_per_epoch == 0)
                        if self.evaluates_at(step):
                            summary = self.run_evaluation()
                        elif (
                            self.config.checkpoint_every_steps
                            and step % self.config.checkpoint_every_steps == 0
                        ):
                            self.save(LAST)
                        signum = stop.pending(self.info, self.device)
                        if signum and not finished:
                            self._save_and_hand_over(stop, signum)
                        if finished:
                            break
                    else:
                        if not self.evaluates_at(self.state.step):
                            self.save(LAST)  # end of epoch (an evaluation saves it too)
        finally:
            self.logger.close()
        return summary

    def evaluates_at(self, step: int) -> bool:
        """Whether the step ends with an evaluation: the last step, and epoch ends as ``trainer.eval_schedule``
        says (``official``: every 25th epoch and each of the last 30, the official RegSeg protocol)."""
        if step >= self.total_steps:
            return True
        epoch, within = divmod(step, self.steps_per_epoch)
        if within:
            return False
        if self.config.eval_schedule is EvalSchedule.official:
            epochs = math.ceil(self.total_steps / self.steps_per_epoch)
            return epoch % OFFICIAL_EVAL_EVERY == 0 or epoch > epochs - OFFICIAL_EVAL_LAST
        return epoch % self.config.eval_every_epochs == 0

    def _save_and_hand_over(self, stop: StopSignals, signum: int) -> None:
        checkpoint = self.run_dir.last
        self.save(LAST)
        self.logger.flush()
        if self.info.is_main:
            log.warning("%s: saved %s at step %d", signal.Signals(signum).name, checkpoint, self.state.step)
        stop.hand_over(signum, self.state.step, checkpoint, self.info)

    def _log_progress(self, loss: float, epoch: int, started: float, start_step: int) -> None:
        step = self.state.step
        lr = self.optimizer.param_groups[0]["lr"]
        self.logger.log(step, {"train/loss": loss, "lr/weights": lr}, kind="train", epoch=epoch)
        now = time.monotonic()
        # The rate over the last few progress lines (evaluations included): it follows a change of the
        # machine's load, where a whole-run average would swing for a long time.
        then, then_step = self._recent[0]
        rate = (step - then_step) / (now - then) if now > then else math.nan
        self._recent.append((now, step))
        eta = (self.total_steps - step) / rate if rate > 0 else math.nan
        log.info(
            "epoch %d step %d/%d  loss %.4f  lr %.5f  %.2f it/s  eta %s",
            epoch,
            step,
            self.total_steps,
            loss,
            lr,
            rate,
            _duration(eta),
        )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
