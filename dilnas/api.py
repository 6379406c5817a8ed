"""dilnas from Python (notebooks, scripts): the commands as functions that return their results.

    from dilnas import api

    found = api.search("trainer.epochs=4", run_dir="runs/nb/search")     # the same overrides as on the command line
    print(found.arch.field_of_view, found.miou)                          # held-out mIoU of the derived network
    trained = api.retrain(f"arch={found.arch_path}", run_dir="runs/nb/retrain")
    model = api.load_model(found.arch_path, trained.checkpoint)          # eval mode, ready for inference

Each function can be called any number of times in one process: the overrides are composed with the
commands' configs (``conf/``), then the library's runs (``dilnas.train.search_run``, ``retrain_run``,
``derive_run``) are called directly; no command module is imported and no Hydra job state is set. Bad input raises ``dilnas.errors.UserError`` (nothing is printed, nothing exits) and
leaves no run directory behind. Progress goes to stderr and to ``<run_dir>/<command>.log`` through the
``dilnas`` logger only; the root logger is left alone.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dilnas.cli import one_line_hydra_error, register_resolvers, register_schemas, typed_config
from dilnas.models import initialize
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.spec.options import DeriveRule, RetrainConfig, SearchRunConfig
from dilnas.spec.shipped import CONF_DIR
from dilnas.train.derive_run import derive_from_run
from dilnas.train.distributed import run_distributed
from dilnas.train.retrain_run import run_retrain
from dilnas.train.run_dir import RunDir, RunRecord
from dilnas.train.search_run import run_search
from dilnas.train.trainer import TrainSetup
from dilnas.utils.errors import UserError, one_line, os_reason
from dilnas.utils.files import dumps_json, remove_unused_dir, user_cache_dir

__all__ = ["RetrainResult", "SearchResult", "UserError", "derive", "load_model", "retrain", "search"]

log = logging.getLogger("dilnas")
T = TypeVar("T")
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
    _check_path("run_dir", run_dir, optional=True)
    config, record, path = _prepare("search", SearchRunConfig, overrides, run_dir)
    found = _in_run_dir(
        path,
        "search",
        lambda: run_distributed(
            config.device,
            lambda device, info: run_search(
                config, TrainSetup(RunDir(path), device, config.seed, info), record
            ),
        ),
    )
    print(found.describe())  # the line the command prints
    return SearchResult(path, RunDir(path).arch, found.arch, found.miou)


def retrain(
    *overrides: str, run_dir: str | os.PathLike | None = None, arch: ArchSpec | None = None
) -> RetrainResult:
    """``dilnas-retrain OVERRIDES... hydra.run.dir=RUN_DIR``: ``arch=`` among the overrides (a shipped name or a
    path, as on the command line), or ``arch`` an ArchSpec (``api.derive``'s, for instance)."""
    _check_path("run_dir", run_dir, optional=True)
    if arch is not None:
        if not isinstance(arch, ArchSpec):
            raise UserError(f"arch={arch!r}: expected an ArchSpec (or give arch= among the overrides)")
        # A file named by its content, kept: the run records its path, and a resume finds it again.
        text = dumps_json(arch.to_dict())
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        given = arch.save(user_cache_dir() / "archs" / f"{arch.name}-{digest}.json")
        return retrain(*overrides, f"arch={given}", run_dir=run_dir)
    config, record, path = _prepare("retrain", RetrainConfig, overrides, run_dir)
    outcome = _in_run_dir(
        path,
        "retrain",
        lambda: run_distributed(
            config.device, lambda device, info: run_retrain(config, device, info, RunDir(path), record)
        ),
    )
    line = outcome.describe(path)
    if line:
        print(line)  # the line the command prints
    return RetrainResult(path, outcome.checkpoint, float(outcome.miou))


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
    _check_path("run_dir", run_dir)
    _check_path("checkpoint", checkpoint, optional=True)
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int)):
        raise UserError(f"topk={topk!r}: expected a whole number of rates >= 1, or None for the run's own")
    try:
        chosen = DeriveRule(rule)
    except ValueError:
        raise UserError(f"rule={rule!r}: expected one of {', '.join(r.value for r in DeriveRule)}") from None
    return derive_from_run(RunDir(run_dir), chosen, topk, Path(checkpoint) if checkpoint else None)


def load_model(
    arch: str | os.PathLike | ArchSpec | None, checkpoint: str | os.PathLike | None = None
) -> RegSeg:
    """The network of ``arch`` (a shipped name, a path, or an ArchSpec) in eval mode, with the weights of
    ``checkpoint`` when given: a dilnas retraining checkpoint, a search's supernet checkpoint (the derived
    network inherits its weights) or a released RegSeg one. The checkpoint's class count wins over the
    architecture file's (retraining builds the classifier for its data's classes). ``arch=None`` takes the
    architecture a retraining checkpoint records."""
    if not isinstance(arch, ArchSpec):
        _check_path("arch", arch, optional=True)
    _check_path("checkpoint", checkpoint, optional=True)
    return initialize.load_model(arch, checkpoint)


def _check_path(name: str, value: object, optional: bool = False) -> None:
    """A UserError naming the argument when ``value`` is not a path (a str or an os.PathLike)."""
    if value is None and optional:
        return
    if not isinstance(value, str | os.PathLike) or (isinstance(value, str) and not value):
        allowed = "a path (str or os.PathLike)" + (" or None" if optional else "")
        raise UserError(f"{name}={value!r}: expected {allowed}")


# ---- running a library run in-process ------------------------------------------------------------
def _prepare(
    name: str, schema: type[T], overrides: tuple[str, ...], run_dir: str | os.PathLike | None
) -> tuple[T, RunRecord, Path]:
    """Compose ``conf/<name>.yaml`` with ``overrides`` as Hydra's command line would and type it: the config,
    what the run directory records about the call, and the run directory (``run_dir`` or the command's)."""
    if not all(isinstance(item, str) for item in overrides):
        raise UserError(f"overrides must be strings such as 'seed=1', got {overrides!r}")
    cfg = _compose(name, list(overrides))
    path = Path(run_dir if run_dir is not None else cfg.hydra.run.dir).absolute()
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    config = typed_config(task_cfg, schema)
    return config, RunRecord(OmegaConf.to_yaml(task_cfg), list(overrides)), path


def _in_run_dir(path: Path, name: str, body: Callable[[], T]) -> T:
    """``body()`` with the run directory made and the ``dilnas`` logger writing to ``<path>/<name>.log``; a
    run directory that bad input left empty (but for that log) is removed again."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # the same line as the commands print
        raise UserError(f"run_dir={path}: {os_reason(error)}") from None
    with _job_logging(path / f"{name}.log"):
        try:
            return body()
        except UserError as error:
            remove_unused_dir(path, {f"{name}.log"})
            if one_line(error) != str(error):  # raised in a data loader worker: its message alone
                raise UserError(one_line(error)) from None
            raise


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
