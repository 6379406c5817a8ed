"""``dilnas-search``: the bilevel dilation search; writes the derived ``arch.json`` into the run directory.

With no arguments it searches the small space on the built-in synthetic data on a CPU in minutes.
Sweeps: ``dilnas-search -m seed=0,1,2``. DDP: ``torchrun --nproc_per_node=N -m dilnas.search ...``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Subset

from dilnas.cli import hydra_command, typed_config
from dilnas.data.factory import build_dataset
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.options import SearchRunConfig
from dilnas.spec.space import SPACE_COPY, load_space, space_path
from dilnas.train.distributed import run_distributed
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchTrainer
from dilnas.train.trainer import start_run_dir
from dilnas.utils.checkpoints import seed_everything
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_text

log = logging.getLogger("dilnas")


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, SearchRunConfig)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return run_distributed(config.device.value, lambda device, info: _run(config, device, info, run_dir, cfg))


def _run(config: SearchRunConfig, device, info, run_dir: Path, cfg: DictConfig) -> float:
    search = config.search
    if not 0.0 < search.heldout_fraction < 1.0:
        raise UserError(f"search.heldout_fraction={search.heldout_fraction}: expected a number in (0, 1)")
    seed_everything(config.seed)
    space = load_space(search.space)
    for warning in space.padding_warnings():
        log.warning("search space %s: %s", space.name, warning)

    # The held-out split for the architecture step is carved from the training split, never the eval split.
    train_full = build_dataset(config.data, config.data.train_split, train=True)
    train_plain = build_dataset(config.data, config.data.train_split, train=False)
    train_indices, heldout_indices = split_indices(len(train_full), search.heldout_fraction, config.seed)
    if train_full.num_classes != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(train_full.num_classes))

    supernet = SuperNet(space, search.relaxation.value, search.shared_kernel)
    trainer = SearchTrainer(
        supernet,
        Subset(train_full, train_indices),
        Subset(train_full, heldout_indices),
        Subset(train_plain, heldout_indices),
        list(train_full.class_names),
        run_dir,
        search,
        config.trainer,
        config.optim,
        config.loss,
        device,
        config.seed,
        config.data.num_workers,
        info,
    )
    # The trainer checks its settings without touching the disk; only then is the run directory written.
    start_run_dir(run_dir, config.resume, OmegaConf.to_yaml(cfg), info)
    if info.is_main:
        atomic_write_text(run_dir / SPACE_COPY, space_path(search.space).read_text(encoding="utf-8"))
    if config.resume:
        trainer.resume()
    summary = trainer.fit()

    probs = [p.tolist() for p in supernet.probabilities()]
    overrides = list(HydraConfig.get().overrides.task)
    arch = derive_arch(
        space, probs, search.rule.value, search.topk, provenance={"seed": config.seed, "overrides": overrides}
    )
    if info.is_main:
        save_arch(arch, run_dir / "arch.json")
        rates = [b.dilations for b in arch.blocks]
        print(
            f"{space.name}: derived dilations {rates}, field of view {arch.field_of_view} px; held-out mIoU "
            f"derived {summary.get('miou', float('nan')):.2f} / supernet {summary.get('miou_supernet', float('nan')):.2f}; "
            f"wrote {run_dir / 'arch.json'}"
        )
    return float(summary.get("miou", float("nan")))


main = hydra_command("dilnas-search", "search", run)

if __name__ == "__main__":
    main()
