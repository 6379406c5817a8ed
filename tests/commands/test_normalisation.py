"""The normalisation a run really used is recorded with its checkpoints; load_model, dilnas-predict and
dilnas-deploy take it from there unless told otherwise, and say which they use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dilnas.analysis.predictions import input_normalisation
from dilnas.data.factory import normalisation
from dilnas.data.palettes import overlay, palette_for
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
    # The class names travel with the checkpoint too: red in red, the background transparent, a legend.
    assert model.class_names == ("background", "red", "green")
    mask = np.array(Image.open(tmp_path / "out" / "a_mask.png"))
    drawn = np.array(Image.open(tmp_path / "out" / "a_overlay.png")).astype(int)
    plain = np.full((64, 64, 3), (30, 60, 90), dtype=np.uint8)
    named = palette_for(3, class_names=model.class_names)
    assert np.array_equal(drawn, overlay(plain, mask, named, 0.5, transparent=(0,)))
    legend = np.array(Image.open(tmp_path / "out" / "legend.png"))
    assert (legend == (255, 0, 0)).all(axis=-1).sum() > 20 and (legend == (0, 128, 0)).all(axis=-1).sum() > 20
    assert "(colours: legend.png)" in predicted.stdout


def test_without_a_record_imagenet_and_the_words_say_so():
    mean, std, note = input_normalisation(None, None, None)
    assert mean == list(DataConfig().mean) and std == list(DataConfig().std)
    assert note.endswith("(the checkpoint records none: ImageNet's)")
