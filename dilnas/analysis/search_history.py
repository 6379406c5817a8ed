"""The evolution of a search's architecture, read back from ``arch_history.jsonl``.

The search loop appends one JSON object per epoch (the first is epoch 1) to ``<run>/arch_history.jsonl``::

    {"epoch": 3, "step": 120, "temperature": 1.0, "field_of_view": 303,
     "branches": {"block4.b1": {"rates": [1, 2], "probs": [0.4, 0.6], "choice": 2,
                                "expected": 1.6, "entropy": 0.673}, ...}}

``load_history`` validates it into an ``ArchHistory`` (branches in block order, the warm-up epochs found,
see ``warmup_through``); ``find_histories`` finds the runs of a sweep and ``job_labels`` names them by the
Hydra overrides that differ between them. ``dilnas.analysis.search_figures`` draws them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dilnas.spec.arch import load_arch
from dilnas.spec.options import SearchRunConfig
from dilnas.train.arch_image import in_block_order
from dilnas.train.run_dir import ARCH, ARCH_HISTORY, OVERRIDES, RunDir, _natural_key
from dilnas.utils.errors import UserError

UNIFORM_TOLERANCE = 1e-5  # probabilities are logged rounded to 6 decimals


@dataclass
class BranchHistory:
    """One searchable branch over the epochs that recorded it (all lists run in parallel with ``epochs``)."""

    key: str
    rates: tuple[int, ...]
    epochs: list[int] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)  # [epoch][candidate]
    expected: list[float] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)
    written: int | None = None  # the rate in the run's arch.json (the search's result), when there is one

    @property
    def final_choice(self) -> int:
        """The derived rate: the run's ``arch.json`` (which may be another shortlisted architecture's, chosen
        on held-out data) or else the last epoch's choice."""
        return self.written if self.written is not None else self.choices[-1]

    @property
    def final_prob(self) -> float:
        return self.probs[-1][self.rates.index(self.final_choice)]


@dataclass
class ArchHistory:
    """A validated ``arch_history.jsonl``: epochs in increasing order, branches in block order.

    ``warmup_through`` is the last recorded epoch of the weight warm-up (the logits had not moved yet), or
    None when no recorded epoch is one."""

    path: Path
    epochs: list[int]
    field_of_view: list[float]
    branches: dict[str, BranchHistory]
    warmup_through: int | None = None


# ---- reading -------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(record: dict, name: str, where: str, check, expected: str) -> Any:
    if name not in record:
        raise UserError(f"{where}: missing field {name!r}")
    value = record[name]
    if not check(value):
        raise UserError(f"{where}: field {name!r} is {json.dumps(value)}, expected {expected}")
    return value


def _parse_branch(key: str, entry: Any, where: str) -> tuple[tuple[int, ...], list[float], int, float]:
    where = f"{where}: branches[{key!r}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object with rates, probs, choice, expected")
    rates = _field(
        entry,
        "rates",
        where,
        lambda v: isinstance(v, list) and v and all(map(_is_int, v)),
        "a list of integers",
    )
    probs = _field(
        entry, "probs", where, lambda v: isinstance(v, list) and all(map(_is_number, v)), "numbers"
    )
    if len(probs) != len(rates):
        raise UserError(f"{where}: {len(probs)} probs for {len(rates)} rates {rates}")
    choice = _field(entry, "choice", where, _is_int, "an integer")
    if choice not in rates:
        raise UserError(f"{where}: choice {choice} is not one of the rates {rates}")
    expected = _field(entry, "expected", where, _is_number, "a number")
    return tuple(rates), [float(p) for p in probs], choice, float(expected)


def load_history(path: str | os.PathLike) -> ArchHistory:
    """Read and validate one ``arch_history.jsonl``.

    Blank lines are skipped. An epoch written twice (a resumed run repeats the epochs after its last
    checkpoint) keeps its last line. A branch must keep the same candidate rates throughout. The warm-up
    comes from the ``config.yaml`` beside the file, if it has one (see ``warmup_through``).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such history file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read history: {error}") from None

    rates_of: dict[str, tuple[int, ...]] = {}
    by_epoch: dict[int, tuple[float, dict[str, tuple]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object with epoch, field_of_view, branches")
        epoch = _field(record, "epoch", where, _is_int, "an integer")
        fov = _field(record, "field_of_view", where, _is_number, "a number")
        entries = _field(record, "branches", where, lambda v: isinstance(v, dict), "an object")
        branches = {}
        for key, entry in entries.items():
            parsed = _parse_branch(key, entry, where)
            known = rates_of.setdefault(key, parsed[0])
            if parsed[0] != known:
                raise UserError(
                    f"{where}: branches[{key!r}] has rates {list(parsed[0])}, earlier lines have {list(known)}"
                )
            branches[key] = parsed
        by_epoch[epoch] = (float(fov), branches)
    if not by_epoch:
        raise UserError(f"{path}: empty history, no epoch recorded yet")

    epochs = sorted(by_epoch)
    history = ArchHistory(
        path=path,
        epochs=epochs,
        field_of_view=[by_epoch[epoch][0] for epoch in epochs],
        branches={key: BranchHistory(key=key, rates=rates_of[key]) for key in in_block_order(rates_of)},
    )
    for epoch in epochs:
        for key, (_, probs, choice, expected) in by_epoch[epoch][1].items():
            branch = history.branches[key]
            branch.epochs.append(epoch)
            branch.probs.append(probs)
            branch.choices.append(choice)
            branch.expected.append(expected)
    # A key seen only in a line that a later duplicate epoch replaced has no points left.
    history.branches = {key: branch for key, branch in history.branches.items() if branch.epochs}
    history.warmup_through = warmup_through(history, configured_warmup(path.parent))
    for key, rate in written_rates(path.parent / ARCH, history.branches).items():
        history.branches[key].written = rate
    return history


def written_rates(arch_path: Path, branches: dict[str, BranchHistory]) -> dict[str, int]:
    """The searchable rates a finished search wrote into ``arch.json`` (``search.branches[key].choice``), for
    the branches of the history; none while the search runs (no file yet), or for another space's file."""
    if not arch_path.is_file():
        return {}
    searched = (load_arch(arch_path).search or {}).get("branches")
    if not isinstance(searched, dict):
        return {}
    rates = {}
    for key, entry in searched.items():
        rate = entry.get("choice") if isinstance(entry, dict) else None
        if key in branches and rate in branches[key].rates:
            rates[key] = rate
    return rates


def find_histories(directory: str | os.PathLike[str]) -> list[Path]:
    """Every ``arch_history.jsonl`` at or below ``directory``, in natural order (job ``2`` before ``10``);
    hidden folders (``.hydra``) and symbolic links to folders are not searched."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        if ARCH_HISTORY in files and (Path(root) / ARCH_HISTORY).is_file():
            found.append(Path(root) / ARCH_HISTORY)
    return sorted(found, key=lambda path: _natural_key(path.relative_to(directory)))


# ---- warm-up -------------------------------------------------------------------------------------
def configured_warmup(run_dir: Path) -> int | None:
    """``search.warmup_epochs`` of a search run's ``config.yaml``; None when the file is missing or is not a
    search's (a figure then infers the warm-up from the probabilities instead of refusing to draw)."""
    try:
        warmup = RunDir(run_dir).read_config(SearchRunConfig).search.warmup_epochs
    except UserError:
        return None
    return warmup if warmup >= 0 else None


def _is_uniform(probs: Sequence[float]) -> bool:
    return all(math.isclose(p, 1.0 / len(probs), abs_tol=UNIFORM_TOLERANCE) for p in probs)


def warmup_through(history: ArchHistory, warmup_epochs: int | None) -> int | None:
    """The last recorded epoch of the warm-up, or None.

    With the run's ``search.warmup_epochs`` W, epochs 1..W train only the weights (records start at epoch
    1, the state at the end of each epoch). Without it (a copied history, an older run), the warm-up is
    the leading epochs at which every branch is still uniform: the logits start at zero and do not move
    before the warm-up ends. A search whose first step already moved them has none."""
    if warmup_epochs is not None:
        inside = [epoch for epoch in history.epochs if epoch <= warmup_epochs]
    else:
        uniform_at = {epoch: True for epoch in history.epochs}
        for branch in history.branches.values():
            for epoch, probs in zip(branch.epochs, branch.probs, strict=True):
                uniform_at[epoch] = uniform_at[epoch] and _is_uniform(probs)
        inside = []
        for epoch in history.epochs:
            if not uniform_at[epoch]:
                break
            inside.append(epoch)
    return inside[-1] if inside else None


# ---- sweep jobs ----------------------------------------------------------------------------------
def read_overrides(run_dir: Path) -> list[str]:
    """The job's Hydra overrides (``.hydra/overrides.yaml``); [] when the run has none recorded."""
    path = run_dir / OVERRIDES
    if not path.is_file():
        return []
    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"{path}: cannot read overrides: {str(error).splitlines()[0]}") from None
    if overrides is None:
        return []
    if not isinstance(overrides, list):
        raise UserError(
            f"{path}: expected a YAML list of overrides like [seed=1], got {type(overrides).__name__}"
        )
    return [str(item) for item in overrides]


def job_labels(run_dirs: Sequence[Path], root: Path) -> list[str]:
    """A legend label per run of a sweep: the overrides that differ between the runs (``seed=1``), else the
    run's folder relative to ``root`` (also when two runs would get the same label)."""
    overrides = [read_overrides(run_dir) for run_dir in run_dirs]
    shared = set.intersection(*map(set, overrides)) if overrides else set()
    labels = [" ".join(item for item in job if item not in shared) for job in overrides]
    folders = [run_dir.relative_to(root).as_posix() for run_dir in run_dirs]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [
        label if label and label not in repeated else folder
        for label, folder in zip(labels, folders, strict=True)
    ]
