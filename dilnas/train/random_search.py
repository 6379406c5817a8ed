"""Random search, the baseline every search method must beat at equal compute (NAS best practice).

Draw ``search.random_archs`` gapless architectures of the space uniformly, train each from scratch on the
search's training part for ``search.random_steps`` steps, score it on the held-out part (the split the
gradient search's logits see), and pick the best. Each candidate trains in its own run directory below
``candidates/``, so an interrupted random search resumes like any run.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from dilnas.models.regseg import RegSeg
from dilnas.spec.gapless import rates_key, sample_gapless
from dilnas.spec.options import SearchConfig
from dilnas.spec.space import SearchSpace
from dilnas.train.run_dir import RunDir, RunRecord
from dilnas.train.sampling import dataset_length
from dilnas.train.search_trainer import SearchData
from dilnas.train.trainer import Recipe, Trainer, TrainSetup
from dilnas.utils.seeds import RANDOM_ARCHS, derive_seed

log = logging.getLogger("dilnas")
CANDIDATES = "candidates"


class HeldoutTrainer(Trainer):
    """A trainer whose evaluation set is the search's held-out split: its numbers go under ``search/``."""

    overlay_tag = None  # no val/ images of held-out training images

    def measure(self) -> tuple[dict[str, Any], dict[str, float]]:
        summary, _ = super().measure()
        return summary, {"search/miou": summary["miou"], "search/pixel_accuracy": summary["pixel_accuracy"]}


@dataclass
class Candidate:
    rates: list[int]
    miou: float  # held-out
    cpu_seconds: float
    wall_seconds: float


def steps_per_candidate(search: SearchConfig, recipe: Recipe, steps_per_epoch: int) -> int:
    """Each candidate's training steps: ``search.random_steps``, or the training compute of a gradient search
    with this recipe (2 fixed-network steps per search step) shared among the candidates. The gradient
    search's held-out selection (``search.select_top``) is not counted: for random search at exactly equal
    compute, give ``random_steps`` (experiments/ground_truth/README.md matches the measured CPU time)."""
    if search.random_steps is not None:
        return search.random_steps
    total = recipe.trainer.max_steps or recipe.trainer.epochs * steps_per_epoch
    return max(1, 2 * total // search.random_archs)


def random_search(
    space: SearchSpace,
    data: SearchData,
    setup: TrainSetup,
    recipe: Recipe,
    search: SearchConfig,
    resume: bool,
    record: RunRecord,
) -> list[Candidate]:
    """Train every drawn candidate; returns them in the order drawn (``pick`` chooses). A candidate's run
    directory holds no arch.json, so that sweep reports never take it for a search run."""
    draws = sample_gapless(
        space.base, space.branches, search.random_archs, derive_seed(setup.seed, RANDOM_ARCHS)
    )
    steps_per_epoch = dataset_length(data.train_set) // (recipe.trainer.batch_size * setup.info.world_size)
    steps = steps_per_candidate(search, recipe, steps_per_epoch)
    trainer_config = dataclasses.replace(recipe.trainer, max_steps=steps, eval_every_epochs=10**9)
    candidates = []
    for index, rates in enumerate(draws):
        arch = space.arch_with(rates)
        run_dir = RunDir(setup.run_dir.path / CANDIDATES / f"{index}-{rates_key(rates)}")
        trainer = HeldoutTrainer(
            RegSeg(arch),
            data.as_train_data(),
            dataclasses.replace(setup, run_dir=run_dir),
            dataclasses.replace(recipe, trainer=trainer_config),
        )
        run_dir.start(resume, record, setup.info)
        if resume:
            trainer.resume()
        log.info(
            "random search: candidate %d/%d %s, %d steps", index + 1, len(draws), rates_key(rates), steps
        )
        try:
            summary = trainer.fit()
        finally:
            run_dir.release()
        candidates.append(
            Candidate(list(rates), summary["miou"], trainer.state.cpu_seconds, trainer.state.wall_seconds)
        )
    return candidates


def pick(candidates: list[Candidate]) -> Candidate:
    """The candidate with the best held-out mIoU (the first drawn among equals)."""
    return max(candidates, key=lambda candidate: candidate.miou)
