"""The run directory: the one module that knows the names of a run's files, and how a run directory is
started, refused and resumed.

A run directory (``hydra.run.dir``) holds::

    arch.json             the architecture trained (retraining) or derived (search)
    arch_<rule>.json      search only: dilnas-export's re-derivations (it never rewrites arch.json)
    config.yaml           the composed config, written when the run starts (dilnas-export reads it back)
    space.yaml            search only: the search space as searched
    metrics.jsonl         every logged scalar, one JSON object per record
    arch_history.jsonl    search only: per epoch, the rate probabilities of every searchable branch
    eval.json             dilnas-retrain eval_only=true: the evaluation of a checkpoint
    checkpoints/last.pt   the latest checkpoint (resume continues from it)
    checkpoints/best.pt   the checkpoint with the best evaluation
    tb/                   TensorBoard events
    .lock                 the writer's lock (its pid): one run writes a run directory at a time
    .hydra/overrides.yaml the command line's overrides (written by start(), as Hydra would)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dilnas.train.distributed import DistInfo, broadcast_object
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError
from dilnas.utils.files import RUN_LOCK, atomic_write_text

ARCH = "arch.json"
CONFIG = "config.yaml"
SPACE = "space.yaml"
METRICS = "metrics.jsonl"
ARCH_HISTORY = "arch_history.jsonl"
EVAL = "eval.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
TENSORBOARD = "tb"
OVERRIDES = Path(".hydra") / "overrides.yaml"
# Settings a resumed run may change (a moved data set, other loader processes, caching): they change no
# result. Any other difference in the sections a command names is another run.
RESUME_MAY_CHANGE = ("data.root", "data.num_workers", "data.cache")
T = TypeVar("T")
log = logging.getLogger("dilnas")
LOCK = RUN_LOCK  # the writer's lock (``RunDir.acquire``)
_HELD: dict[tuple[Path, str], IO[str]] = {}  # the (run directory, lock file) locks this process holds
_FRESH: set[Path] = set()  # the run directories this process started empty (``discard_unfinished``)
# What a run writes into its directory: all of it goes when a fresh run is refused before its first checkpoint.
RUN_FILES = (ARCH, CONFIG, SPACE, METRICS, ARCH_HISTORY, EVAL, LOCK)
RUN_FOLDERS = (TENSORBOARD, CHECKPOINTS)


@dataclass(frozen=True)
class RunRecord:
    """What a run directory records about the command that started it."""

    config_yaml: str  # the composed config (config.yaml)
    overrides: list[str]  # the command line's overrides (.hydra/overrides.yaml)


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def arch(self) -> Path:
        return self.path / ARCH

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def space(self) -> Path:
        return self.path / SPACE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def arch_history(self) -> Path:
        return self.path / ARCH_HISTORY

    @property
    def eval(self) -> Path:
        return self.path / EVAL

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST

    def exported_arch(self, rule: str, checkpoint: Path) -> Path:
        """Where ``dilnas-export`` writes by default: beside the search's own ``arch.json``, never over it
        (``arch_expected.json``, ``arch_topk2.json``, ``arch_argmax_best.json`` for another checkpoint);
        ``rule`` as the derived architecture's ``search`` section names it."""
        suffix = "" if Path(checkpoint).resolve() == self.last.resolve() else f"_{Path(checkpoint).stem}"
        return self.path / f"arch_{rule}{suffix}.json"

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def overrides(self) -> Path:
        return self.path / OVERRIDES

    def jsonl(self, name: str) -> Path:
        return self.path / name

    def start(
        self,
        resume: bool,
        record: RunRecord,
        info: DistInfo,
        *,
        same: Sequence[str] = (),
        files: Mapping[str, str] | None = None,
        command: str | None = None,
    ) -> None:
        """Refuse a directory that already holds a run unless ``resume`` (the run then continues from
        ``last.pt``); rank 0 creates it and writes ``config.yaml`` and ``.hydra/overrides.yaml`` (the
        commands that write runs set ``hydra.output_subdir: null``, so that Hydra does not rewrite them
        before a run is refused).

        A resumed run must be the run its checkpoint belongs to: the config sections or keys in ``same``
        (``data``, ``search.relaxation``) must equal those in the run's ``config.yaml`` (apart from
        ``RESUME_MAY_CHANGE``), and the run's files named in ``files`` (``arch.json``) must hold the given
        text. Otherwise the run is refused, with every difference, before anything is written.

        Once the checks pass, rank 0 takes the directory's lock (``acquire``): a second run started in it while
        this one runs is refused. ``release`` (or the end of the process) gives it back.
        """
        self._check_command(command)
        fresh = not self.config.exists() and not self.last.exists()
        holds_run = broadcast_object(self.last.exists(), info)
        if holds_run and not resume:
            raise UserError(
                f"{self.path} already holds a run ({self.last}): pass resume=true to continue it, or choose "
                "another hydra.run.dir"
            )
        if holds_run:
            self._check_same_run(record.config_yaml, same, files or {})
            load_checkpoint(self.last)  # a corrupt or non-finite checkpoint is refused before any write
        # Checked before the lock, so that a refused run leaves even the lock file as it was.
        self.acquire(info)
        if fresh and info.is_main:
            _FRESH.add(self.path.resolve())
        if info.is_main:
            log.info("run directory %s%s", self.path.resolve(), " (resumed)" if holds_run else "")
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.config, record.config_yaml)
            atomic_write_text(
                self.overrides, yaml.safe_dump(list(record.overrides), default_flow_style=False)
            )

    def _check_command(self, command: str | None) -> None:
        """Refuse the run directory of the other command (``dilnas-search`` or ``dilnas-retrain``) in one line."""
        if command is None:
            return
        other = None
        if command == "dilnas-retrain" and self.is_search_run():
            other = "dilnas-search"
        elif (
            command == "dilnas-search"
            and not self.is_search_run()
            and (self.last.exists() or self.arch.exists())
        ):
            other = "dilnas-retrain"
        if other is not None:
            raise UserError(
                f"{self.path} is a {other} run directory; {command} needs its own: choose another hydra.run.dir"
            )

    def acquire(self, info: DistInfo, name: str = LOCK, what: str = "this run directory") -> None:
        """Take the run directory's exclusive lock (rank 0; ``.lock``, or another lock file ``name``, holding
        the writer's pid). The kernel releases it when the process ends, so a crashed run never blocks its
        resume; a run of another process holding it is refused with one line naming its pid and ``what`` it
        writes."""
        key = (self.path.resolve(), name)
        if not info.is_main or key in _HELD:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / name, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UserError(
                f"{self.path}: another dilnas run (pid {holder}) is writing {what}; wait for it "
                "to end, or choose another hydra.run.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD[key] = handle

    def discard_unfinished(self) -> None:
        """After a run that this process started in an empty directory was refused before its first checkpoint
        (bad data found while training, a full disk): remove what it wrote, so that nothing is left but what
        was there before. A run with a checkpoint, or one that continued another's, is left as it is."""
        key = self.path.resolve()
        if key not in _FRESH or self.last.exists():
            return
        _FRESH.discard(key)
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        overrides = self.path / OVERRIDES
        overrides.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            overrides.parent.rmdir()  # .hydra/, when it holds nothing else

    def is_being_written(self) -> bool:
        """Whether a live process holds the directory's lock (``acquire``): a run in progress."""
        try:
            handle = open(self.path / LOCK, encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def release(self, name: str = LOCK) -> None:
        """Give the lock back (the run has ended; a later run of this process may take it again)."""
        _FRESH.discard(self.path.resolve())
        handle = _HELD.pop((self.path.resolve(), name), None)
        if handle is not None:
            handle.close()

    def _check_same_run(self, config_yaml: str, same: Sequence[str], files: Mapping[str, str]) -> None:
        differences = []
        if self.config.is_file():
            then, now = yaml.safe_load(self.config.read_text(encoding="utf-8")), yaml.safe_load(config_yaml)
            for key in same:
                differences += _differences(key, _select(then, key), _select(now, key))
        for name, text in files.items():
            path = self.path / name
            if path.is_file() and path.read_text(encoding="utf-8") != text:
                differences.append(f"{name} differs from the run's")
        if differences:
            raise UserError(
                f"resume=true: {self.path} holds another run: {'; '.join(differences)}; resume with the run's "
                "settings, or start a new run in another hydra.run.dir"
            )

    def resume_checkpoint(self) -> Path | None:
        """The checkpoint a resumed run continues from, or None when the run has not saved one yet."""
        return self.last if self.last.exists() else None

    def is_search_run(self) -> bool:
        return self.space.is_file()

    def read_config(self, schema: type[T]) -> T:
        """The run's ``config.yaml`` as ``schema`` (an option dataclass of ``dilnas.spec.options``): the one
        reader of a run's settings. Settings added to dilnas since the run take their defaults; a missing
        file, or one that does not fit ``schema``, is a one-line UserError."""
        if not self.config.is_file():
            raise UserError(f"{self.path}: no {CONFIG} (a run writes it when it starts)")
        try:
            loaded = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(self.config))
            config = OmegaConf.to_object(loaded)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{self.config}: not the config of a {schema.__name__} run: {reason}") from None
        if not isinstance(config, schema):
            raise UserError(f"{self.config}: not the config of a {schema.__name__} run")
        return config


def _select(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _differences(key: str, then: Any, now: Any) -> list[str]:
    """``key (X then, Y now)`` for every leaf that differs, keys in ``RESUME_MAY_CHANGE`` aside."""
    if key in RESUME_MAY_CHANGE:
        return []
    if isinstance(then, dict) and isinstance(now, dict):
        return [
            item
            for sub in sorted({*then, *now})
            for item in _differences(f"{key}.{sub}", then.get(sub), now.get(sub))
        ]
    return [] if then == now else [f"{key} ({then!r} then, {now!r} now)"]


def _natural_key(path: Path) -> list[list[tuple[int, Any]]]:
    """Order ``2`` before ``10``: Hydra numbers the jobs of a multirun 0, 1, ..., 10, ..."""
    return [
        [(0, int(token)) if token.isdigit() else (1, token) for token in re.split(r"(\d+)", part) if token]
        for part in path.parts
    ]


def find_runs(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    """Every directory at or below ``sweep_dir`` holding ``arch.json``, in natural order (links not followed)."""
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs[:] = [name for name in dirs if not name.startswith(".")]  # .hydra, .git: never runs
        if ARCH in files and (Path(root) / ARCH).is_file():
            found.append(Path(root))
    return sorted(found, key=lambda path: _natural_key(path.relative_to(sweep_dir)))
