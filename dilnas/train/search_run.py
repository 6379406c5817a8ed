"""A search run: the bilevel dilation search (or random search, the baseline) in one run directory, from the
typed config to the derived ``arch.json``. ``dilnas-search`` and ``dilnas.api.search`` both call ``run_search``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Subset

from dilnas.data.factory import build_dataset, normalisation, train_input_size
from dilnas.models.initialize import NORMALISATION_ENTRY
from dilnas.models.memory import check_memory
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import ArchSpec, save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.gapless import rates_text
from dilnas.spec.options import DeriveRule, Relaxation, SearchMethod, SearchRunConfig
from dilnas.spec.space import SearchSpace, load_space, space_path
from dilnas.train.random_search import pick, random_search
from dilnas.train.run_dir import SPACE, RunRecord
from dilnas.train.run_log import RunLogger
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchData, SearchTrainer
from dilnas.train.selection import Selection, selected_arch
from dilnas.train.trainer import Recipe, TrainingDiverged, TrainSetup
from dilnas.utils.checkpoints import seed_everything
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_text
from dilnas.utils.provenance import stamp

log = logging.getLogger("dilnas")
# With the space: what a resumed search must share with its checkpoint (the weights' shapes, the split, the
# relaxation and the method all follow from these).
RESUME_SAME = (
    "data",
    "seed",
    "search.relaxation",
    "search.shared_kernel",
    "search.heldout_fraction",
    "search.heldout_seed",
    "search.method",
    "search.random_archs",
)


@dataclass(frozen=True)
class SearchOutcome:
    """What a search found: the derived architecture (written to the run's ``arch.json``) and its scores."""

    space: SearchSpace
    arch: ArchSpec
    miou: float  # held-out mIoU of the kept network (search/miou)
    miou_supernet: float | None  # held-out mIoU of the supernet's expectation (gradient search only)
    arch_path: Path | None = None  # where arch.json was written

    def describe(self) -> str:
        """The line ``dilnas-search`` (and ``dilnas.api.search``) prints at the end."""
        branches = self.space.branches
        rates = [self.arch.blocks[b.block].dilations[b.branch] for b in branches]
        picked = rates_text([b.key for b in branches], rates)
        versus = f" / supernet {self.miou_supernet:.2f}" if self.miou_supernet is not None else ""
        return (
            f"{self.space.name}: derived dilations {picked}, field of view {self.arch.field_of_view} px; held-out "
            f"mIoU derived {self.miou:.2f}{versus}; wrote {self.arch_path}"
        )


def search_data(config: SearchRunConfig) -> SearchData:
    """The training split, cut into the part the weights train on and the held-out part the logits step on
    (never the evaluation split); the cut depends on ``search.heldout_seed`` only."""
    search = config.search
    train_full = build_dataset(config.data, config.data.train_split, train=True)
    train_plain = build_dataset(config.data, config.data.train_split, train=False)
    train_indices, heldout_indices = split_indices(
        len(train_full), search.heldout_fraction, search.heldout_seed
    )
    return SearchData(
        Subset(train_full, train_indices),
        Subset(train_full, heldout_indices),
        Subset(train_plain, heldout_indices),
        list(train_full.class_names),
        config.data.num_workers,
        train_full.class_colours,
    )


def run_search(config: SearchRunConfig, setup: TrainSetup, record: RunRecord) -> SearchOutcome:
    """Search, then write the derived ``arch.json`` into the run directory (rank 0)."""
    try:
        return _run_search(config, setup, record)
    except TrainingDiverged:
        raise  # its metrics show what diverged: kept
    except UserError:
        setup.run_dir.discard_unfinished()  # refused before its first checkpoint: nothing left behind
        raise
    finally:
        setup.run_dir.release()  # the run directory's lock, taken when the run started


def _run_search(config: SearchRunConfig, setup: TrainSetup, record: RunRecord) -> SearchOutcome:
    seed_everything(config.seed)
    space = load_space(config.search.space)
    size = train_input_size(config.data)
    for warning in space.padding_warnings((size[0], size[1]) if size else None):
        log.warning("search space %s: %s", space.name, warning)
    data = search_data(config)
    if len(data.class_names) != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(len(data.class_names)))
    recipe = Recipe(config.trainer, config.optim, config.loss)
    provenance = stamp(seed=config.seed, overrides=record.overrides)
    if config.search.method is SearchMethod.random:
        arch, summary = _random_search(config, space, data, setup, recipe, record, provenance)
    else:
        arch, summary = _gradient_search(config, space, data, setup, recipe, record, provenance)
    if setup.info.is_main:
        save_arch(arch, setup.run_dir.arch)
    miou = float(summary.get("miou", float("nan")))
    return SearchOutcome(space, arch, miou, summary.get("miou_supernet"), setup.run_dir.arch)


def _gradient_search(
    config: SearchRunConfig,
    space: SearchSpace,
    data: SearchData,
    setup: TrainSetup,
    recipe: Recipe,
    record: RunRecord,
    provenance: dict[str, Any],
) -> tuple[ArchSpec, dict[str, Any]]:
    relaxation, shared = config.search.relaxation, config.search.shared_kernel
    size = train_input_size(config.data)
    shape = (config.trainer.batch_size, space.base.stem.in_channels, *size) if size else None
    # Sized as the softmax relaxation, which computes every candidate: an upper bound for gumbel's one.
    check_memory(
        lambda: SuperNet(space, Relaxation.softmax, shared),
        shape,
        setup.device,
        f"the supernet of {space.name}",
    )
    supernet = SuperNet(space, relaxation, shared)
    trainer = SearchTrainer(supernet, data, setup, recipe, config.search)
    trainer.extra_state[NORMALISATION_ENTRY] = normalisation(config.data)
    # The trainer checks its settings without touching the disk; only then is the run directory written.
    _start(config, setup, record)
    if config.resume:
        trainer.resume()
    summary = trainer.fit()
    probs = [p.tolist() for p in supernet.probabilities()]
    selection = Selection.from_records(summary.get("selection"))
    search = config.search
    return selected_arch(space, probs, search.rule, search.topk, provenance, selection), summary


def _start(config: SearchRunConfig, setup: TrainSetup, record: RunRecord) -> None:
    """Start (or refuse, or continue) the run directory; it keeps a copy of the space as searched."""
    text = space_path(config.search.space).read_text(encoding="utf-8")
    setup.run_dir.start(
        config.resume, record, setup.info, same=RESUME_SAME, files={SPACE: text}, command="dilnas-search"
    )
    if setup.info.is_main:
        atomic_write_text(setup.run_dir.space, text)


def _random_search(
    config: SearchRunConfig,
    space: SearchSpace,
    data: SearchData,
    setup: TrainSetup,
    recipe: Recipe,
    record: RunRecord,
    provenance: dict[str, Any],
) -> tuple[ArchSpec, dict[str, Any]]:
    """``search.method=random``: the best of ``search.random_archs`` briefly trained candidates, written like a
    gradient search's result (arch.json with a ``search`` section, a final ``search/`` evaluation with the
    summed cost in metrics.jsonl) so that reports and ground truth treat both alike."""
    _start(config, setup, record)
    candidates = random_search(space, data, setup, recipe, config.search, config.resume, record)
    best = pick(candidates)
    one_hot = [
        [float(rate == chosen) for rate in b.candidates]
        for b, chosen in zip(space.branches, best.rates, strict=True)
    ]
    arch = derive_arch(space, one_hot, DeriveRule.argmax, provenance=provenance)
    search = {
        **(arch.search or {}),
        "rule": "random",
        "candidates": [dataclasses.asdict(c) for c in candidates],
    }
    arch = dataclasses.replace(arch, search=search)
    cpu, wall = sum(c.cpu_seconds for c in candidates), sum(c.wall_seconds for c in candidates)
    logger = RunLogger(setup.run_dir, enabled=setup.info.is_main)
    logger.rewind(-1)  # one summary record, also when a finished random search is resumed
    logger.log(0, {"search/miou": best.miou}, kind="eval", final=True, cpu_seconds=cpu, wall_seconds=wall)
    logger.close()
    return arch, {"miou": best.miou}
