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
from dilnas.data.factory import build_dataset
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import ArchSpec, save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.options import SearchMethod, SearchRunConfig
from dilnas.spec.space import SearchSpace, load_space, space_path
from dilnas.train.distributed import run_distributed
from dilnas.train.random_search import pick, random_search
from dilnas.train.run_dir import RunDir
from dilnas.train.run_log import RunLogger
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchData, SearchTrainer
from dilnas.train.trainer import Recipe, TrainSetup
from dilnas.utils.checkpoints import seed_everything
from dilnas.utils.files import atomic_write_text

log = logging.getLogger("dilnas")


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, SearchRunConfig)
    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    config_yaml = OmegaConf.to_yaml(cfg)
    return run_distributed(
        config.device.value,
        lambda device, info: search(
            config, TrainSetup(run_dir, device, config.seed, info), config_yaml, overrides
        ),
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


def search(config: SearchRunConfig, setup: TrainSetup, config_yaml: str, overrides: list[str]) -> float:
    """Search, then write the derived ``arch.json``; returns the derived network's held-out mIoU."""
    seed_everything(config.seed)
    space = load_space(config.search.space)
    for warning in space.padding_warnings():
        log.warning("search space %s: %s", space.name, warning)
    data = search_data(config)
    if len(data.class_names) != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(len(data.class_names)))
    recipe = Recipe(config.trainer, config.optim, config.loss)
    provenance = {"seed": config.seed, "overrides": overrides}
    if config.search.method is SearchMethod.random:
        arch, summary = _random_search(config, space, data, setup, recipe, config_yaml, provenance)
    else:
        supernet = SuperNet(space, config.search.relaxation.value, config.search.shared_kernel)
        trainer = SearchTrainer(supernet, data, setup, recipe, config.search)
        # The trainer checks its settings without touching the disk; only then is the run directory written.
        _start(config, setup, config_yaml)
        if config.resume:
            trainer.resume()
        summary = trainer.fit()
        probs = [p.tolist() for p in supernet.probabilities()]
        arch = derive_arch(space, probs, config.search.rule.value, config.search.topk, provenance=provenance)
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


def _start(config: SearchRunConfig, setup: TrainSetup, config_yaml: str) -> None:
    """Start (or refuse, or continue) the run directory; it keeps a copy of the space as searched."""
    setup.run_dir.start(config.resume, config_yaml, setup.info)
    if setup.info.is_main:
        text = space_path(config.search.space).read_text(encoding="utf-8")
        atomic_write_text(setup.run_dir.space, text)


def _random_search(
    config: SearchRunConfig,
    space: SearchSpace,
    data: SearchData,
    setup: TrainSetup,
    recipe: Recipe,
    config_yaml: str,
    provenance: dict[str, Any],
) -> tuple[ArchSpec, dict[str, Any]]:
    """``search.method=random``: the best of ``search.random_archs`` briefly trained candidates, written like a
    gradient search's result (arch.json with a ``search`` section, a final ``search/`` evaluation with the
    summed cost in metrics.jsonl) so that reports and ground truth treat both alike."""
    _start(config, setup, config_yaml)
    candidates = random_search(space, data, setup, recipe, config.search, config.resume, config_yaml)
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


main = hydra_command("dilnas-search", "search", run)

if __name__ == "__main__":
    main()
