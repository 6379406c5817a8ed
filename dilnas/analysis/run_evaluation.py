"""A finished retraining run's network and evaluation data, evaluated again elsewhere: with the data at another
root (the machine where it is evaluated) or at another evaluation size (``data.eval_short_side``). The
experiments that evaluate grid cells again (``experiments/camvid/reevaluate.py``, ``int8.py``) share it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dilnas.data.dataset import LabelledDataset
from dilnas.data.factory import build_dataset
from dilnas.models.initialize import load_model
from dilnas.models.regseg import RegSeg
from dilnas.spec.options import RetrainConfig
from dilnas.train.run_dir import RunDir

KEEP = object()  # evaluation_set's default: the run's own evaluation size


def evaluation_set(
    run: str | Path, root: str | Path | None = None, eval_short_side: int | object | None = KEEP
) -> LabelledDataset:
    """The run's evaluation split as its ``config.yaml`` built it, read from ``root`` (None: the run's) at
    ``eval_short_side`` (None: native resolution; left out: the run's), in one process."""
    data = RunDir(run).read_config(RetrainConfig).data
    changes: dict[str, object] = {"num_workers": 0}
    if root is not None:
        changes["root"] = str(root)
    if eval_short_side is not KEEP:
        changes["eval_short_side"] = eval_short_side
    data = dataclasses.replace(data, **changes)  # type: ignore[arg-type]
    return build_dataset(data, data.eval_split, train=False)


def final_network(run: str | Path) -> RegSeg:
    """The run's network with its final weights (``checkpoints/last.pt``), in eval mode."""
    return load_model(None, RunDir(run).last)
