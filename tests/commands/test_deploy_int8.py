"""dilnas-deploy quantize=int8: onnxruntime's INT8 model, calibrated on images, written only when its labels
agree with the float network's; refused in one line where it cannot apply."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from dilnas.analysis.predictions import calibration_images
from dilnas.models import quantize
from dilnas.models.deploy_formats import onnx_bytes, onnx_forward, onnx_session
from dilnas.models.initialize import load_model
from dilnas.models.quantize import label_agreement, write_int8_onnx
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.utils.errors import UserError
from tests.helpers import ENV, REPO, SYNTHETIC
from tests.helpers.commands import run
from tests.helpers.fake_data import random_image, write_png
from tests.helpers.networks import needs_onnx, randomise_batchnorm

TINY = SYNTHETIC / "tiny_short_dilated.json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the tiny architecture with BatchNorms that matter, and folder of images."""
    torch.manual_seed(2)
    model = RegSeg(load_arch(TINY))
    randomise_batchnorm(model, seed=2)
    root = tmp_path_factory.mktemp("int8")
    torch.save({"model": model.state_dict(), "step": 0}, root / "best.pt")
    for index in range(6):
        write_png(root / "images" / f"i{index}.png", random_image(index, 48, 64))
    return root


def test_calibration_images_are_the_first_ones_resized_and_normalised(trained):
    images = calibration_images(trained / "images", 4, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], (32, 40))
    assert len(images) == 4 and all(image.shape == (1, 3, 32, 40) for image in images)
    assert (
        float(min(image.min() for image in images)) >= -2.01 and float(max(i.max() for i in images)) <= 2.01
    )
    rest = calibration_images(trained / "images", 4, [0.5] * 3, [0.25] * 3, skip=4)  # their own size
    assert len(rest) == 2 and all(image.shape == (1, 3, 48, 64) for image in rest)
    with pytest.raises(UserError, match=r"^calibration=.*: the folder holds no"):
        calibration_images(trained, 4, [0.5] * 3, [0.25] * 3)  # names the setting, not images=


def test_label_agreement_counts_pixels():
    def constant(label):
        return lambda images: (
            torch.nn.functional.one_hot(torch.full(images.shape[-2:], label), 3)
            .permute(2, 0, 1)[None]
            .float()
        )

    images = [torch.zeros(1, 3, 2, 5)]
    assert label_agreement(constant(1), constant(1), images) == 1.0
    assert label_agreement(constant(1), constant(2), images) == 0.0

    def half(images):  # class 1 on the left 2 columns of 5, class 2 elsewhere
        logits = constant(2)(images)
        logits[..., :2] = constant(1)(images)[..., :2]
        return logits

    assert label_agreement(constant(1), half, images) == pytest.approx(2 / 5)


@needs_onnx
@pytest.mark.slow
def test_deploy_int8_writes_a_quantized_model_that_labels_like_the_float_one(trained, tmp_path):
    out = tmp_path / "int8.onnx"
    result = run(
        "dilnas.deploy",
        f"arch={TINY}",
        f"checkpoint={trained / 'best.pt'}",
        "quantize=int8",
        f"calibration={trained / 'images'}",
        "calibration_images=4",
        "check_images=2",
        "input_size=[48,64]",
        "min_agreement=0.5",
        f"out={out}",
    )
    assert result.returncode == 0, result.stderr
    assert "as ONNX int8 (opset 18, QDQ)" in result.stdout and "calibrated on 4 images" in result.stdout
    assert "on 2 other images it labels" in result.stdout  # checked on images it was not calibrated on
    agreement = float(result.stdout.split("it labels ")[1].split("%")[0]) / 100
    assert 0.5 <= agreement <= 1.0
    import onnx

    graph = onnx.load(str(out)).graph
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) > 10  # really quantized
    session = onnx_session(out)
    # One input size, the calibrated one (its squeeze-excitation pools are average pools of that size).
    assert [i.shape for i in session.get_inputs()] == [[1, 3, 48, 64]]
    assert onnx_forward(session, torch.randn(1, 3, 48, 64)).shape == (1, 3, 48, 64)
    assert "(1,3,48,64) -> logits (1,3,48,64), this input size only" in result.stdout
    ops = {node.op_type for node in graph.node}
    assert "ReduceMean" not in ops and "AveragePool" in ops  # the SE averages run in int8 as pools
    # The head stays float: the classifier's weights are plain, every other convolution's are quantized.
    produced_by = {output: node.op_type for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert [produced_by.get(conv.input[1]) for conv in convs[:-1]] == ["DequantizeLinear"] * (len(convs) - 1)
    assert produced_by.get(convs[-1].input[1]) is None
    eager = load_model(TINY, trained / "best.pt")
    check = calibration_images(trained / "images", 2, *_imagenet(), (48, 64), skip=4)
    measured = label_agreement(eager, lambda x: onnx_forward(session, x), check)
    assert measured == pytest.approx(agreement, abs=1e-4)


def _imagenet():
    from dilnas.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    return IMAGENET_MEAN, IMAGENET_STD


@needs_onnx
@pytest.mark.slow
def test_an_int8_model_that_labels_otherwise_is_not_written(trained, tmp_path, monkeypatch):
    eager = load_model(TINY, trained / "best.pt")
    calibration = calibration_images(trained / "images", 2, *_imagenet(), (48, 64))
    other = RegSeg(load_arch(TINY)).eval()  # other weights: another labelling
    with torch.no_grad():
        other.decoder.classifier.bias.copy_(torch.tensor([0.0, 0.0, 100.0]))  # class 2 everywhere
    monkeypatch.setattr(
        quantize, "quantize_int8", lambda data, images: onnx_bytes(other, images[0], dynamic=False)
    )
    expected = label_agreement(eager, other, calibration)
    assert expected < 0.99
    out = tmp_path / "int8.onnx"
    with pytest.raises(UserError) as caught:
        write_int8_onnx(eager, out, calibration, 0.99)
    assert f"on {expected:.2%} of the pixels of 2 calibration images (allowed: at least 99.00%)" in str(
        caught.value
    )
    assert "nothing written" in str(caught.value) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["quantize=int8", "format=torchscript"], "quantize=int8: only with format=onnx"),
        (["quantize=int8"], "quantize=int8 needs calibration=IMAGES"),
        (["quantize=int4"], "quantize"),
    ],
)
def test_int8_refusals_are_one_line(tmp_path, arguments, message):
    out = tmp_path / "model.onnx"
    result = run("dilnas.deploy", f"arch={TINY}", f"out={out}", *arguments)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()


@needs_onnx
@pytest.mark.slow
def test_the_gpu_checks_provider_table_runs_on_a_cpu(tmp_path):
    # tools/onnx_providers.py (make gpu-check): every provider has a row, those missing here say so.
    arguments = ["--size", "64", "128", "--repeats", "1", "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, REPO / "tools" / "onnx_providers.py", *arguments],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "providers.json").read_text())["rows"]
    assert [(row["provider"], row["precision"]) for row in rows][:2] == [
        ("CPUExecutionProvider", "fp32"),
        ("CPUExecutionProvider", "int8"),
    ]
    assert all(row["fps"] > 0 for row in rows[:2])
    for row in rows[2:]:
        assert "fps" in row or "not in this onnxruntime" in row["skipped"]
    assert "30-37 (T4, paper)" in result.stdout


@needs_onnx
def test_the_benchmarks_int8_session_takes_the_benchmarks_batch():
    from dilnas.models.deploy import deploy_model
    from dilnas.models.quantize import temporary_int8_session

    images = torch.randn(2, 3, 32, 32)  # dilnas-bench infer batch_size=2
    with temporary_int8_session(deploy_model(RegSeg(load_arch(TINY))), images) as session:
        assert onnx_forward(session, images).shape == (2, 3, 32, 32)
