"""``dilnas-search``: the bilevel dilation search; writes the derived ``arch.json`` into the run directory.

With no arguments it searches the small space on the built-in synthetic data on a CPU in minutes.
Sweeps: ``dilnas-search -m seed=0,1,2``. DDP: ``torchrun --nproc_per_node=N -m dilnas.search ...``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Subset

from dilnas.cli import hydra_command, typed_config
from dilnas.data.factory import build_dataset, train_input_size
from dilnas.models.memory import check_memory
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import ArchSpec, save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.options import SearchMethod, SearchRunConfig
from dilnas.spec.space import SearchSpace, load_space, space_path
from dilnas.train.distributed import run_distributed
from dilnas.train.random_search import pick, random_search
from dilnas.train.run_dir import SPACE, RunDir, RunRecord
from dilnas.train.run_log import RunLogger
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchData, SearchTrainer
from dilnas.train.trainer import Recipe, TrainSetup
from dilnas.utils.checkpoints import seed_everything
from dilnas.utils.files import atomic_write_text

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


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, SearchRunConfig)
    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    record = RunRecord(OmegaConf.to_yaml(cfg), list(HydraConfig.get().overrides.task))
    return run_distributed(
        config.device.value,
        lambda device, info: search(config, TrainSetup(run_dir, device, config.seed, info), record),
    )


def search_data(config: SearchRunConfig, num_classes: int | None = None) -> SearchData:
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
    )


def search(config: SearchRunConfig, setup: TrainSetup, record: RunRecord) -> float:
    """Search, then write the derived ``arch.json``; returns the derived network's held-out mIoU."""
    seed_everything(config.seed)
    space = load_space(config.search.space)
    for warning in space.padding_warnings():
        log.warning("search space %s: %s", space.name, warning)
    data = search_data(config)
    if len(data.class_names) != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(len(data.class_names)))
    recipe = Recipe(config.trainer, config.optim, config.loss)
    provenance = {"seed": config.seed, "overrides": record.overrides}
    if config.search.method is SearchMethod.random:
        arch, summary = _random_search(config, space, data, setup, recipe, record, provenance)
    else:
        relaxation, shared = config.search.relaxation.value, config.search.shared_kernel
        size = train_input_size(config.data)
        shape = (config.trainer.batch_size, space.base.stem.in_channels, *size) if size else None
        # Sized as the softmax relaxation, which computes every candidate: an upper bound for gumbel's one.
        check_memory(
            lambda: SuperNet(space, "softmax", shared), shape, setup.device, f"the supernet of {space.name}"
        )
        supernet = SuperNet(space, relaxation, shared)
        trainer = SearchTrainer(supernet, data, setup, recipe, config.search)
        # The trainer checks its settings without touching the disk; only then is the run directory written.
        _start(config, setup, record)
        if config.resume:
            trainer.resume()
        summary = trainer.fit()
        probs = [p.tolist() for p in supernet.probabilities()]
        arch = derive_arch(
            space,
            probs,
            config.search.rule.value,
            config.search.topk,
            provenance=provenance,
            selection=summary.get("selection"),
        )
    run_dir, info = setup.run_dir, setup.info
    if info.is_main:
        save_arch(arch, run_dir.arch)
        rates = [b.dilations for b in arch.blocks]
        supernet_miou = summary.get("miou_supernet")
        versus = f" / supernet {supernet_miou:.2f}" if supernet_miou is not None else ""
        print(
            f"{space.name}: derived dilations {rates}, field of view {arch.field_of_view} px; held-out mIoU "
            f"derived {summary.get('miou', float('nan')):.2f}{versus}; wrote {run_dir.arch}"
        )
    return float(summary.get("miou", float("nan")))


def _start(config: SearchRunConfig, setup: TrainSetup, record: RunRecord) -> None:
    """Start (or refuse, or continue) the run directory; it keeps a copy of the space as searched."""
    text = space_path(config.search.space).read_text(encoding="utf-8")
    setup.run_dir.start(config.resume, record, setup.info, same=RESUME_SAME, files={SPACE: text})
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
    arch = derive_arch(space, one_hot, "argmax", provenance=provenance)
    search = {
        **(arch.search or {}),
        "rule": "random",
        "candidates": [dataclasses.asdict(c) for c in candidates],
    }
    arch = dataclasses.replace(arch, search=search)
    cpu, wall = sum(c.cpu_seconds for c in candidates), sum(c.wall_seconds for c in candidates)
    summary = {"miou": best.miou}
    logger = RunLogger(setup.run_dir, enabled=setup.info.is_main)
    logger.rewind(-1)  # one summary record, also when a finished random search is resumed
    logger.log(0, {"search/miou": best.miou}, kind="eval", final=True, cpu_seconds=cpu, wall_seconds=wall)
    logger.close()
    return arch, summary


EXAMPLES = (
    "dilnas-search                                         # synthetic_tiny on the synthetic data, minutes on a CPU",
    "dilnas-search search.space=regseg_exp48 data=cityscapes data.root=/data/cityscapes device=cuda",
    "dilnas-search -m seed=0,1,2 search.relaxation=softmax,gumbel   # a sweep, then its report",
)
main = hydra_command("dilnas-search", "search", run, EXAMPLES)

if __name__ == "__main__":
    main()
