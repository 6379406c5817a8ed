"""The bilevel search loop: the retraining loop (checkpoints, resume, DDP, logging) plus an architecture
step on a held-out split after every weight step, the dilation history, and a gap probe.

Per step: (after ``warmup_epochs``) the logits take one Adam step on a held-out batch, then the weights take
one SGD step on a training batch. Per epoch: the probabilities, current choice, expected rate and entropy of
every branch go to ``arch_history.jsonl`` and TensorBoard. Every evaluation (the gap probe) measures the
held-out mIoU of the supernet and of the derived network with the same weights, like for like: both networks'
BatchNorm statistics are re-estimated on the same training images (``search.gap_bn_batches``), the supernet's
at the current logits and, for either relaxation, on the expectation (the softmax mixture) it is scored on.
The numbers go under ``search/``: they come from the held-out part of the training split, never from the
evaluation split (``val/`` is only ever the evaluation split, in retraining). The last evaluation also scores
the next most probable gapless networks after the rule's pick (``search.select_top`` in all) the same way and
keeps the best: that is the search's result, ``search/miou`` its score, ``search/miou_rule`` the rule's pick's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from dilnas.models.supernet import SuperNet
from dilnas.spec.derivation import derive_rates, shortlist
from dilnas.spec.gapless import sample_gapless
from dilnas.spec.options import Relaxation, SearchConfig, SearchMethod
from dilnas.train.arch_image import ProbabilityImage
from dilnas.train.architect import Architect
from dilnas.train.distributed import broadcast_buffers
from dilnas.train.run_dir import ARCH_HISTORY, METRICS
from dilnas.train.sampling import BatchStream, ResumableDistributedSampler, SeededAugmentation, dataset_length
from dilnas.train.selection import calibration_batches, probe, score_architectures, selection_of
from dilnas.train.trainer import Recipe, TrainData, Trainer, TrainingDiverged, TrainSetup
from dilnas.utils.errors import UserError
from dilnas.utils.seeds import HELDOUT_ORDER, UNIFORM_ARCHS, derive_seed

log = logging.getLogger("dilnas")


@dataclass
class SearchData:
    """The search's data: the weights train on ``train_set``; the logits step on ``heldout_train`` (augmented
    like training) and the gap probe scores ``heldout_eval`` (the same samples, not augmented)."""

    train_set: Dataset
    heldout_train: Dataset
    heldout_eval: Dataset
    class_names: Sequence[str]
    num_workers: int = 0
    class_colours: Sequence[tuple[int, int, int]] | None = None  # the data's own colours, if it has them

    def as_train_data(self) -> TrainData:
        """The trainer's view: the weights train on ``train_set``, evaluations score ``heldout_eval``."""
        return TrainData(
            self.train_set,
            self.heldout_eval,
            self.class_names,
            num_workers=self.num_workers,
            class_colours=self.class_colours,
        )


class SearchTrainer(Trainer):
    """The bilevel search: ``Trainer``'s loop over the supernet's weights, with an ``Architect`` step of the
    logits on a held-out batch before every weight step (after ``search.warmup_epochs``), the dilation
    history per epoch and the gap probe at every evaluation."""

    overlay_tag = None  # it evaluates on the held-out split: no val/ images (of a supernet, they mislead)
    progress_label = "search"

    def __init__(
        self, supernet: SuperNet, data: SearchData, setup: TrainSetup, recipe: Recipe, search: SearchConfig
    ):
        if recipe.trainer.sync_bn and search.relaxation is Relaxation.gumbel:
            # SyncBatchNorm conversion would replace the gated BatchNorm that carries gumbel's gradient.
            raise UserError("trainer.sync_bn=true does not work with search.relaxation=gumbel: use softmax")
        super().__init__(
            supernet,
            data.as_train_data(),
            setup,
            recipe,
            exclude=supernet.arch_parameters(),
            # A gumbel step computes one candidate: with a kernel per candidate, the others get no gradient.
            find_unused_parameters=search.relaxation is Relaxation.gumbel and not search.shared_kernel,
            logs=(METRICS, ARCH_HISTORY),
        )
        self.supernet, self.search = supernet, search
        self.architect = Architect(self.model, supernet, self.criterion, search)
        # search.method=uniform: the logits stay uniform (no architecture step at all); the selection at the end
        # scores uniformly drawn gapless architectures instead of the most probable ones.
        self.uniform = search.method is SearchMethod.uniform
        self.warmup_steps = self.total_steps if self.uniform else search.warmup_epochs * self.steps_per_epoch
        if self.warmup_steps >= self.total_steps and not self.uniform:
            trainer = recipe.trainer
            bound = (
                f"trainer.max_steps={trainer.max_steps}"
                if trainer.max_steps
                else f"trainer.epochs={trainer.epochs} of {self.steps_per_epoch} steps"
            )
            raise UserError(
                f"search.warmup_epochs={search.warmup_epochs} leaves no architecture step: the warm-up takes "
                f"{self.warmup_steps} steps and the search ends after {self.total_steps} ({bound}); lower "
                "search.warmup_epochs or search longer"
            )
        batch_size, info = recipe.trainer.batch_size, setup.info
        heldout_seed = derive_seed(self.seed, HELDOUT_ORDER)
        heldout_sampler = ResumableDistributedSampler(
            dataset_length(data.heldout_train), heldout_seed, info.rank, info.world_size
        )
        if len(heldout_sampler) < batch_size:
            raise UserError(
                f"trainer.batch_size={batch_size} is larger than the {len(heldout_sampler)} held-out "
                f"samples per process (search.heldout_fraction={search.heldout_fraction}): lower it, raise "
                "search.heldout_fraction or add data"
            )
        self.heldout = BatchStream(
            SeededAugmentation(data.heldout_train, heldout_seed),
            heldout_sampler,
            batch_size,
            data.num_workers,
        )
        self.arch_steps = 0
        self.arch_loss = math.nan
        self.probability_image = ProbabilityImage()  # keeps its figure: each epoch only redraws the cells

    # ---- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            **super().checkpoint_state(),
            "arch_optimizer": self.architect.optimizer.state_dict(),
            "arch_steps": self.arch_steps,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.architect.optimizer.load_state_dict(state["arch_optimizer"])
        self.arch_steps = int(state["arch_steps"])
        self.heldout.seek(self.arch_steps)

    # ---- the bilevel step ------------------------------------------------------------------------
    def temperature_at(self, step: int) -> float:
        start, end = self.search.temperature_start, self.search.temperature_end
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        return start * (end / start) ** progress

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        step = self.state.step
        self.supernet.temperature = self.temperature_at(step)
        # One copy to the device serves both steps (Trainer.train_step's .to() is then a no-op).
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        if step >= self.warmup_steps:
            heldout_images, heldout_labels = self.heldout.next()
            self.supernet.sample_seed = derive_seed(
                self.seed, step, 1
            )  # the same gumbel sample on every rank
            heldout = (heldout_images.to(self.device), heldout_labels.to(self.device))
            self.arch_loss = self.architect.step((images, labels), heldout, self.optimizer)
            self.arch_steps += 1
            if not math.isfinite(self.arch_loss):
                raise TrainingDiverged(
                    f"non-finite architecture loss at step {step + 1}: stopped; the last good checkpoint is "
                    f"{self.run_dir.last} (try a lower search.arch_lr)"
                )
        self.supernet.sample_seed = derive_seed(self.seed, step, 0)
        return super().train_step(images, labels)

    # ---- watching the dilations ------------------------------------------------------------------
    def branch_report(self) -> tuple[list[int], dict[str, dict[str, Any]], int]:
        """(current choices, per-branch record, field of view of the current choice)."""
        space = self.supernet.space
        probs = [p.cpu() for p in self.supernet.probabilities()]
        rates = derive_rates(space, [p.tolist() for p in probs], self.search.rule, self.search.topk)
        branches = {}
        for branch, p, rate in zip(space.branches, probs, rates, strict=True):
            candidates = torch.tensor(branch.candidates, dtype=torch.float64)
            branches[branch.key] = {
                "rates": list(branch.candidates),
                "probs": [round(float(x), 6) for x in p],
                "choice": rate,
                "expected": float((p.double() * candidates).sum()),
                "entropy": float(-(p * p.clamp_min(1e-12).log()).sum()),
            }
        return rates, branches, space.arch_with(rates).field_of_view

    def after_step(self, epoch: int, epoch_finished: bool) -> None:
        step = self.state.step
        if step % self.config.log_every_steps == 0:
            scalars = {
                "lr/arch": self.architect.optimizer.param_groups[0]["lr"],
                "arch/temperature": self.supernet.temperature,
            }
            if step > self.warmup_steps:
                scalars["train/arch_loss"] = self.arch_loss
            self.logger.log(step, scalars, kind="arch")
        if not epoch_finished or not self.info.is_main:
            return
        _, branches, field_of_view = self.branch_report()
        record = {
            "epoch": math.ceil(step / self.steps_per_epoch),
            "step": step,
            "temperature": self.supernet.temperature,
            "field_of_view": field_of_view,
            "branches": branches,
        }
        self.logger.record(ARCH_HISTORY, record)
        scalars = {"arch/fov": float(field_of_view)}
        for key, branch in branches.items():
            for rate, p in zip(branch["rates"], branch["probs"], strict=True):
                scalars[f"arch/prob/{key}/d{rate}"] = p
            scalars[f"arch/rate/{key}"] = float(branch["choice"])
            scalars[f"arch/expected/{key}"] = branch["expected"]
            scalars[f"arch/entropy/{key}"] = branch["entropy"]
        self.logger.log(step, scalars, kind="arch_epoch", epoch=record["epoch"])
        self.logger.add_image("arch/probabilities", self.probability_image(branches), step)

    # ---- gap probe -------------------------------------------------------------------------------
    def calibration_batches(self) -> list[torch.Tensor]:
        """The probe's BatchNorm calibration images (``calibration_batches``), the same on every rank (so
        that every rank probes the same networks)."""
        return calibration_batches(
            self.train_set.dataset, self.seed, self.search.gap_bn_batches, self.config.batch_size, self.device
        )

    def score(self, candidates: Sequence[Sequence[int]], batches: list[torch.Tensor]) -> list[dict[str, Any]]:
        """Each candidate as a network with the supernet's weights, scored on the held-out split
        (``dilnas.train.selection.score_architectures``)."""
        return score_architectures(
            self.supernet,
            candidates,
            batches,
            self.eval_loader,
            self.class_names,
            self.device,
            self.precision,
            progress=f"score {len(candidates)} candidates" if self.info.is_main else None,
        )

    def measure(self) -> tuple[dict[str, Any], dict[str, float]]:
        """The supernet and the derived network on the held-out split, like for like (module docstring); at
        the search's last evaluation, the best of the shortlist (``search.select_top``) is the derived one."""
        broadcast_buffers(self.supernet, self.info)  # every rank probes (and later saves) the same network
        rates, _, _ = self.branch_report()
        batches = self.calibration_batches()
        # A copy (the probe must not touch the training state) that scores and calibrates the expectation
        # (the softmax mixture at the current logits and temperature) in either relaxation.
        supernet = SuperNet(self.supernet.space, Relaxation.softmax, self.search.shared_kernel)
        supernet.load_state_dict(self.supernet.state_dict())
        supernet.temperature = self.supernet.temperature
        supernet.to(self.device)
        supernet_miou = probe(
            supernet, batches, self.eval_loader, self.class_names, self.device, self.precision
        )["miou"]
        select = self.state.step >= self.total_steps and self.search.select_top > 1
        candidates = [rates]
        if select and self.uniform:  # uniform draws, scored alike (random search with weight sharing)
            space = self.supernet.space
            seed = derive_seed(self.seed, UNIFORM_ARCHS)
            candidates = [
                list(r) for r in sample_gapless(space.base, space.branches, self.search.select_top, seed)
            ]
        elif select:  # the rule's pick and the next most probable gapless networks, scored alike
            probs = [p.tolist() for p in self.supernet.probabilities()]
            candidates = shortlist(self.supernet.space, probs, rates, self.search.select_top)
        if select and self.info.is_main:
            log.info(
                "selection: scoring %d candidates on the held-out split (%d batches each)",
                len(candidates),
                len(self.eval_loader),
            )
        scored = self.score(candidates, batches)
        selection = selection_of(scored)
        summary = {**scored[selection.scored.index(selection.best)], "miou_supernet": supernet_miou}
        scalars = {
            "search/miou": summary["miou"],
            "search/miou_supernet": supernet_miou,
            "search/gap": supernet_miou - summary["miou"],
            "search/pixel_accuracy": summary["pixel_accuracy"],
        }
        if select:
            summary["selection"] = selection.to_records()
            scalars["search/miou_rule"] = selection.rule_pick.miou
        return summary, scalars
