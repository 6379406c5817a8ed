"""The normalisation a run really used is recorded with its checkpoints; load_model, dilnas-predict and
dilnas-deploy take it from there unless told otherwise, and say which they use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dilnas.analysis.predictions import input_normalisation
from dilnas.data.factory import normalisation
from dilnas.models.initialize import load_model
from dilnas.spec.options import DataConfig
from dilnas.utils.checkpoints import load_checkpoint
from tests.helpers import ENV, REPO
from tests.helpers.commands import TINY_RUN


@pytest.mark.slow
def test_a_synthetic_run_records_its_own_statistics_and_predict_uses_them(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "dilnas.retrain",
        *TINY_RUN,
        "trainer.max_steps=2",
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    used = normalisation(DataConfig(image_size=64, context_distance=8, train_samples=32, val_samples=8))
    assert used["mean"] != list(DataConfig().mean)  # the synthetic data's own statistics, not ImageNet's
    for checkpoint in ("last.pt", "best.pt"):
        assert load_checkpoint(run_dir / "checkpoints" / checkpoint)["normalisation"] == used
    model = load_model(None, run_dir / "checkpoints" / "best.pt")
    assert model.normalisation == used
    mean, std, note = input_normalisation(model.normalisation, None, None)
    assert (mean, std) == (used["mean"], used["std"]) and note.endswith("as the checkpoint records")
    _, _, told = input_normalisation(model.normalisation, [0.5, 0.5, 0.5], None)
    assert "as given, not the checkpoint's record" in told
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64), (30, 60, 90)).save(images / "a.png")
    predicted = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilnas.predict",
            f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}",
            f"images={images}",
            f"out={tmp_path / 'out'}",
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert "as the checkpoint records" in predicted.stderr


def test_without_a_record_imagenet_and_the_words_say_so():
    mean, std, note = input_normalisation(None, None, None)
    assert mean == list(DataConfig().mean) and std == list(DataConfig().std)
    assert note.endswith("(the checkpoint records none: ImageNet's)")
