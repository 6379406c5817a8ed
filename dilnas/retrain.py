"""``dilnas-retrain``: train a fixed architecture (the paper's or a derived one) to a measured mIoU.

Also ``torchrun --nproc_per_node=N -m dilnas.retrain ...`` for DDP (one process per device).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dilnas.cli import hydra_command, typed_config
from dilnas.data.factory import build_dataset
from dilnas.models.initialize import initialize_from
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch, save_arch
from dilnas.spec.options import RetrainConfig
from dilnas.train.distributed import run_distributed
from dilnas.train.trainer import Trainer, eval_loader, evaluate, start_run_dir
from dilnas.utils.checkpoints import load_checkpoint, seed_everything
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json

log = logging.getLogger("dilnas")


def run(cfg: DictConfig) -> float:
    config = typed_config(cfg, RetrainConfig)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return run_distributed(config.device.value, lambda device, info: _run(config, device, info, run_dir, cfg))


def _run(config: RetrainConfig, device, info, run_dir: Path, cfg: DictConfig) -> float:
    seed_everything(config.seed)
    train_set = build_dataset(config.data, config.data.train_split, train=True)
    eval_set = build_dataset(config.data, config.data.eval_split, train=False)
    spec = load_arch(config.arch, allow_gaps=config.allow_gaps)
    if spec.num_classes != train_set.num_classes:
        log.info(
            "%s has %d classes: the classifier is built for them",
            config.data.name.value,
            train_set.num_classes,
        )
        spec = spec.with_num_classes(train_set.num_classes)
    model = RegSeg(spec)
    class_names = train_set.class_names

    if config.eval_only:
        path = Path(config.checkpoint or run_dir / "checkpoints" / "best.pt")
        state = load_checkpoint(path)
        if not isinstance(state.get("model"), dict):
            raise UserError(f"{path}: not a dilnas retraining checkpoint (no 'model' entry)")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            detail = [line.strip() for line in str(error).splitlines() if line.strip()][-1]
            raise UserError(f"{path}: does not fit {spec.name}: {detail}") from None
        matrix = evaluate(
            model.to(device),
            eval_loader(eval_set, config.trainer.eval_batch_size, config.data.num_workers, info),
            len(class_names),
            device,
        )
        summary = matrix.summary(class_names)
        if info.is_main:
            atomic_write_json(
                run_dir / "eval.json", {"checkpoint": str(path), "split": config.data.eval_split, **summary}
            )
            print(f"{path}: {config.data.eval_split} mIoU {summary['miou']:.2f}")
        return summary["miou"]

    if config.init and not config.resume:
        reinitialised = initialize_from(model, config.init)
        log.info(
            "initialised from %s%s",
            config.init,
            f" (re-initialised {', '.join(reinitialised)})" if reinitialised else "",
        )
    trainer = Trainer(
        model,
        train_set,
        eval_set,
        class_names,
        run_dir,
        config.trainer,
        config.optim,
        config.loss,
        device,
        config.seed,
        config.data.num_workers,
        info,
        extra_state={"arch": json.dumps(spec.to_dict(), sort_keys=True)},
    )
    # The trainer checks its settings without touching the disk; only then is the run directory written.
    start_run_dir(run_dir, config.resume, OmegaConf.to_yaml(cfg), info)
    if info.is_main:
        save_arch(spec, run_dir / "arch.json")
    if config.resume:
        trainer.resume()
    summary = trainer.fit()
    if info.is_main and summary:
        print(
            f"{spec.name}: {config.data.eval_split} mIoU {summary['miou']:.2f} at step {trainer.state.step} "
            f"(best {trainer.state.best_miou:.2f}); run directory {run_dir}"
        )
    return summary.get("miou", float("nan"))


main = hydra_command("dilnas-retrain", "retrain", run)

if __name__ == "__main__":
    main()
