"""dilnas-deploy: ONNX and TorchScript files of the deploy network reproduce the eager logits, at any batch size
and image size; a file that does not is never written. And the onnxruntime row of dilnas-bench infer."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch

from dilnas.analysis.inference_bench import (
    ONNXRUNTIME_INT8_ROW,
    ONNXRUNTIME_ROW,
    bench_inference,
    format_inference,
)
from dilnas.models import deploy_formats
from dilnas.models.deploy_formats import onnx_forward, onnx_session, write_deployable
from dilnas.models.initialize import load_model
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.utils.errors import UserError
from tests.helpers import SYNTHETIC
from tests.helpers.commands import assert_one_line_error, run
from tests.helpers.networks import needs_onnx, randomise_batchnorm

TINY = SYNTHETIC / "tiny_short_dilated.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A dilnas-style checkpoint of the tiny architecture whose BatchNorms are not the identity (so folding
    them matters), and the eager network it holds."""
    torch.manual_seed(1)
    model = RegSeg(load_arch(TINY))
    randomise_batchnorm(model, seed=1)
    path = tmp_path_factory.mktemp("deploy") / "best.pt"
    torch.save({"model": model.state_dict(), "step": 0}, path)
    return path, load_model(TINY, path)


def load_onnx(path):
    session = onnx_session(path)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert [(i.name, i.shape) for i in inputs] == [("images", ["batch", 3, "height", "width"])]
    assert [o.name for o in outputs] == ["logits"]
    return lambda images: onnx_forward(session, images)


def load_torchscript(path):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # torch.jit is deprecated, and still what C++ loads
        return torch.jit.load(str(path))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "loader"), [pytest.param("onnx", load_onnx, marks=needs_onnx), ("torchscript", load_torchscript)]
)
def test_deploy_cli_writes_a_file_that_matches_eager(tmp_path, checkpoint, fmt, loader):
    path, eager = checkpoint
    out = tmp_path / f"model.{fmt}"
    result = run(
        "dilnas.deploy",
        f"arch={TINY}",
        f"checkpoint={path}",
        f"format={fmt}",
        "input_size=[48,64]",
        f"out={out}",
    )
    assert result.returncode == 0, result.stderr
    reported = re.search(
        r"max \|diff\| against the eager network (\S+), (\S+) of the largest logit \(allowed 1e-05\)",
        result.stdout,
    )
    assert reported and float(reported[2]) <= 1e-5 and float(reported[1]) <= 1e-4, result.stdout
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left beside it
    forward = loader(out)
    images = torch.randn(3, 3, 40, 56)  # another batch size and image size than the command checked
    with torch.inference_mode():
        difference = (forward(images) - eager(images)).abs().max().item()
    assert difference <= 1e-4


def test_deploy_cli_refuses_an_unknown_format(tmp_path):
    out = tmp_path / "model.tflite"
    result = run("dilnas.deploy", f"arch={TINY}", "format=tflite", f"out={out}")
    assert_one_line_error(result, "dilnas-deploy", "format=tflite", "onnx, torchscript")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_does_not_reproduce_eager_is_not_written(tmp_path, checkpoint):
    _, eager = checkpoint
    out = tmp_path / "model.pt"
    with pytest.raises(
        UserError, match=r"model\.pt: the torchscript model's logits differ .* nothing written"
    ):
        write_deployable(eager, "torchscript", out, [32, 32], tolerance=-1.0)  # no difference passes
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_the_deploy_extra_says_how_to_install_it(tmp_path, monkeypatch, checkpoint):
    monkeypatch.setattr(deploy_formats, "missing_onnx_packages", lambda: ["onnxruntime"])
    with pytest.raises(UserError, match=r'format=onnx needs onnxruntime, .*pip install "dilnas\[deploy\]"'):
        write_deployable(checkpoint[1], "onnx", tmp_path / "model.onnx", [32, 32])
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_bench_infer_adds_the_onnxruntime_rows():
    rows = bench_inference(
        load_arch(TINY), (32, 32), torch.device("cpu"), warmup=0, repeats=2, onnxruntime=True
    )
    assert [row.mode for row in rows] == [
        "eager fp32",
        "deploy fp32",
        "deploy fp32 channels_last",
        ONNXRUNTIME_ROW,
        ONNXRUNTIME_INT8_ROW,
    ]
    assert all(row.max_abs_diff <= 1e-4 and row.median_ms > 0 for row in rows[:-1])
    int8 = rows[-1]
    assert 0 < int8.max_abs_diff < 1.0  # rounded, not broken
    speed, low, high = int8.versus_fp32_onnx
    assert 0 < low <= speed <= high
    assert all(row.versus_fp32_onnx is None for row in rows[:-1])
    assert f"{ONNXRUNTIME_INT8_ROW}: {speed:.2f}x the speed of {ONNXRUNTIME_ROW}" in format_inference(rows)


def test_deploy_refuses_to_write_over_its_checkpoint(checkpoint):
    path, _ = checkpoint
    before = path.read_bytes()
    result = run("dilnas.deploy", f"arch={TINY}", f"checkpoint={path}", "format=torchscript", f"out={path}")
    assert_one_line_error(result, "dilnas-deploy", f"writing {path} would replace the input {path}")
    assert path.read_bytes() == before


def test_the_export_check_is_relative_to_the_logits(tmp_path, checkpoint):
    # A trained network's logits reach the hundreds: float32 rounding then exceeds any absolute bound of
    # 1e-4, while it stays about 1e-7 of the largest logit.
    _, eager = checkpoint
    large = copy.deepcopy(eager)
    with torch.no_grad():
        large.decoder.classifier.weight.mul_(2000.0)
        large.decoder.classifier.bias.mul_(2000.0)
    checks = write_deployable(large, "torchscript", tmp_path / "large.pt", [32, 32])
    assert max(check.max_abs_logit for check in checks) > 100
    assert all(check.relative_diff <= 1e-5 for check in checks)
    with pytest.raises(UserError) as caught:
        write_deployable(large, "torchscript", tmp_path / "strict.pt", [32, 32], tolerance=1e-12)
    message = str(caught.value)
    assert "of the largest eager logit" in message and "allowed: 1e-12 of it); nothing written" in message
    assert not (tmp_path / "strict.pt").exists()
