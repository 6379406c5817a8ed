"""dilnas from Python (notebooks, scripts): the commands as functions that return their results.

    from dilnas import api

    found = api.search("trainer.epochs=4", run_dir="runs/nb/search")     # the same overrides as on the command line
    print(found.arch.field_of_view, found.miou)                          # held-out mIoU of the derived network
    trained = api.retrain(f"arch={found.arch_path}", run_dir="runs/nb/retrain")
    model = api.load_model(found.arch_path, trained.checkpoint)          # eval mode, ready for inference

Each function can be called any number of times in one process: Hydra's global state is set up for the call
and cleared after it. Bad input raises ``dilnas.errors.UserError`` (nothing is printed, nothing exits) and
leaves no run directory behind. Progress goes to stderr and to ``<run_dir>/<command>.log`` through the
``dilnas`` logger only; the root logger is left alone.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from dilnas import export
from dilnas import retrain as retrain_command
from dilnas import search as search_command
from dilnas.cli import discard_unused_run_dir, one_line_hydra_error, register_resolvers, register_schemas
from dilnas.models import initialize
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec, load_arch
from dilnas.spec.shipped import CONF_DIR
from dilnas.train.run_dir import RunDir
from dilnas.utils.errors import UserError, one_line, os_reason

__all__ = ["RetrainResult", "SearchResult", "UserError", "derive", "load_model", "retrain", "search"]

log = logging.getLogger("dilnas")
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # as the commands log


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    arch_path: Path  # the derived arch.json
    arch: ArchSpec
    miou: float  # held-out mIoU of the derived network (search/miou)


@dataclass(frozen=True)
class RetrainResult:
    run_dir: Path
    checkpoint: Path  # the best checkpoint (checkpoints/best.pt), or the one evaluated with eval_only=true
    miou: float  # mIoU on the evaluation split (data.eval_split) at the end of the run


def search(*overrides: str, run_dir: str | os.PathLike | None = None) -> SearchResult:
    """``dilnas-search OVERRIDES... hydra.run.dir=RUN_DIR``; ``run_dir`` defaults to the command's
    (``runs/search/<time>``, relative to the working directory)."""
    path, miou, _ = _run_command("search", search_command.run, overrides, run_dir)
    arch_path = RunDir(path).arch
    return SearchResult(path, arch_path, load_arch(arch_path), miou)


def retrain(*overrides: str, run_dir: str | os.PathLike | None = None) -> RetrainResult:
    """``dilnas-retrain OVERRIDES... hydra.run.dir=RUN_DIR`` (``arch=`` is required, as on the command line)."""
    path, miou, cfg = _run_command("retrain", retrain_command.run, overrides, run_dir)
    evaluated = cfg.checkpoint if cfg.eval_only else None
    return RetrainResult(path, Path(evaluated) if evaluated else RunDir(path).best, miou)


def derive(
    run_dir: str | os.PathLike,
    rule: str = "argmax",
    topk: int | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> ArchSpec:
    """The architecture a search run's checkpoint (default ``last.pt``) derives with ``rule`` (``argmax``,
    ``expected`` or ``topk``, with ``topk`` rates; default: the run's own ``topk``), with the held-out selection
    recorded with the checkpoint where the rule picks what the search did; nothing is written (``dilnas-export``
    writes it)."""
    return export.derive_from_run(RunDir(run_dir), rule, topk, Path(checkpoint) if checkpoint else None)


def load_model(
    arch: str | os.PathLike | ArchSpec | None, checkpoint: str | os.PathLike | None = None
) -> RegSeg:
    """The network of ``arch`` (a shipped name, a path, or an ArchSpec) in eval mode, with the weights of
    ``checkpoint`` when given: a dilnas retraining checkpoint, a search's supernet checkpoint (the derived
    network inherits its weights) or a released RegSeg one. The checkpoint's class count wins over the
    architecture file's (retraining builds the classifier for its data's classes). ``arch=None`` takes the
    architecture a retraining checkpoint records."""
    return initialize.load_model(arch, checkpoint)


# ---- running a command in-process ----------------------------------------------------------------
def _run_command(
    name: str,
    task: Callable[[DictConfig], Any],
    overrides: tuple[str, ...],
    run_dir: str | os.PathLike | None,
) -> tuple[Path, float, DictConfig]:
    """Compose ``conf/<name>.yaml`` with ``overrides`` as Hydra's command line would, run ``task`` in
    ``run_dir`` with the Hydra state the commands read, and clear that state again. Returns the run
    directory, what ``task`` returned and the composed config."""
    if not all(isinstance(item, str) for item in overrides):
        raise UserError(f"overrides must be strings such as 'seed=1', got {overrides!r}")
    cfg = _compose(name, list(overrides))
    path = Path(run_dir if run_dir is not None else cfg.hydra.run.dir).absolute()
    with open_dict(cfg):
        cfg.hydra.run.dir = str(path)
        cfg.hydra.runtime.output_dir = str(path)
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    HydraConfig.instance().set_config(cfg)
    try:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # the same line as the commands print
            raise UserError(f"run_dir={path}: {os_reason(error)}") from None
        with _job_logging(path / f"{name}.log"):
            try:
                result = task(task_cfg)
            except UserError as error:
                discard_unused_run_dir()
                if one_line(error) != str(error):  # raised in a data loader worker: its message alone
                    raise UserError(one_line(error)) from None
                raise
    finally:
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
    return path, float(result), task_cfg


def _compose(name: str, overrides: list[str]) -> DictConfig:
    register_schemas()
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=name):
            return compose(name, overrides=overrides, return_hydra_config=True)
    except CompactHydraException as error:
        raise UserError(one_line_hydra_error(error)) from None
    except OmegaConfBaseException as error:
        raise UserError(f"{error.full_key or 'config'}: {error.msg}") from None


@contextlib.contextmanager
def _job_logging(log_file: Path) -> Iterator[None]:
    """The ``dilnas`` logger at INFO to stderr and ``log_file`` for the call, not propagated to the root
    logger; its previous level, handlers and propagation come back after."""
    saved = (log.level, log.propagate, list(log.handlers))
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)]
    for handler in handlers:
        handler.setFormatter(formatter)
    log.handlers = handlers
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            handler.close()
        log.setLevel(saved[0])
        log.propagate = saved[1]
        log.handlers = saved[2]
