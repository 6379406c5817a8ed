"""Mixed precision on a CPU: retraining and both search relaxations run their autocast paths in bfloat16 (the
same code that runs float16 with a gradient scaler on CUDA), so those paths are exercised in CI."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook
from torch.utils.data import Subset

from dilnas.data.factory import build_dataset
from dilnas.models.regseg import RegSeg
from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import load_arch
from dilnas.spec.options import AmpDtype, DataConfig, LossConfig, OptimConfig, SearchConfig, TrainerConfig
from dilnas.spec.space import load_space
from dilnas.train.precision import resolve_precision
from dilnas.train.run_dir import RunDir
from dilnas.train.sampling import split_indices
from dilnas.train.search_trainer import SearchData, SearchTrainer
from dilnas.train.trainer import Recipe, TrainData, Trainer, TrainSetup
from dilnas.utils.errors import UserError
from tests.helpers import REPO, TINY

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU


@pytest.mark.parametrize(
    ("amp", "dtype", "device", "expected", "scaled"),
    [
        (False, AmpDtype.bfloat16, CPU, None, False),
        (True, AmpDtype.auto, CPU, None, False),  # the CPU default stays full precision
        (True, AmpDtype.auto, CUDA, torch.float16, True),
        (True, AmpDtype.bfloat16, CPU, torch.bfloat16, False),  # float32's range: nothing to scale
        (True, AmpDtype.float16, CPU, torch.float16, True),
    ],
)
def test_precision_follows_amp_and_amp_dtype(amp, dtype, device, expected, scaled):
    precision = resolve_precision(amp, dtype, device)
    assert precision.dtype == expected and precision.scaled is scaled and precision.device_type == device.type


@contextlib.contextmanager
def conv_output_dtypes() -> Iterator[dict[bool, set[torch.dtype]]]:
    """The output dtypes of every convolution run inside (copies made for probes included), by training
    mode."""
    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}

    def record(module: nn.Module, args: object, out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            seen[module.training].add(out.dtype)

    handle = register_module_forward_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def train_tiny(kind: str, amp: bool, run_dir: RunDir) -> tuple[nn.Module, dict[bool, set[torch.dtype]]]:
    torch.manual_seed(0)
    data = DataConfig(image_size=48, context_distance=8, train_samples=32, val_samples=4, num_workers=0)
    train, plain = build_dataset(data, "train", True), build_dataset(data, "train", False)
    recipe = Recipe(
        TrainerConfig(max_steps=3, batch_size=4, amp=amp, amp_dtype=AmpDtype.bfloat16),
        OptimConfig(warmup_steps=1),
        LossConfig(),
    )
    setup = TrainSetup(run_dir, CPU, 0)
    trainer: Trainer
    if kind == "retrain":
        model: nn.Module = RegSeg(load_arch(TINY))
        val = build_dataset(data, "val", False)
        trainer = Trainer(model, TrainData(train, val, list(train.class_names)), setup, recipe)
    else:
        kept, heldout = split_indices(len(train), 0.5, seed=0)
        search_data = SearchData(
            Subset(train, kept), Subset(train, heldout), Subset(plain, heldout), list(train.class_names)
        )
        model = SuperNet(load_space("synthetic_tiny"), kind)
        config = SearchConfig(warmup_epochs=0, relaxation=kind, gap_bn_batches=1)
        trainer = SearchTrainer(model, search_data, setup, recipe, config)
    with conv_output_dtypes() as seen:
        summary = trainer.fit()
    assert math.isfinite(summary["miou"])
    return model, seen


@pytest.mark.parametrize("kind", ["retrain", "softmax", "gumbel"])
def test_bfloat16_autocast_trains_and_evaluates_on_a_cpu(tmp_path, kind):
    model, seen = train_tiny(kind, True, RunDir(tmp_path))
    # The weight steps and the evaluation ran under autocast; the search's architecture step (and the gap
    # probe's BatchNorm re-estimation) in full precision.
    assert torch.bfloat16 in seen[True] and seen[False] == {torch.bfloat16}
    assert seen[True] == ({torch.bfloat16} if kind == "retrain" else {torch.bfloat16, torch.float32})
    assert all(p.dtype == torch.float32 and bool(p.isfinite().all()) for p in model.parameters())
    if kind != "retrain":  # the architecture step ran and moved the logits
        assert any(alpha.abs().sum() > 0 for alpha in model.alphas)


def test_bfloat16_on_a_cuda_device_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla T4")
    with pytest.raises(UserError, match="Tesla T4 has no bfloat16"):
        resolve_precision(True, AmpDtype.bfloat16, CUDA)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine it runs the whole check")
def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    script = REPO / "tools" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", script]).returncode == 0  # the script parses
    result = subprocess.run(
        [script], cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}
    )
    assert result.returncode == 0 and "no CUDA device here; skipped" in result.stdout
    assert not (REPO / "runs" / "gpu-check").exists() or not any((REPO / "runs" / "gpu-check").iterdir())
