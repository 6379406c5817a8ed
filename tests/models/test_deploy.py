"""Deploy mode (BN folded, eval, inference_mode, channels_last) computes what the eager model computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dilnas.models.deploy import deploy_model
from dilnas.models.regseg import RegSeg
from tests.helpers.networks import randomise_batchnorm


@pytest.mark.parametrize("channels_last", [False, True])
def test_deploy_matches_eager(exp48, channels_last):
    torch.manual_seed(0)
    model = RegSeg(exp48)
    randomise_batchnorm(model)
    model.eval()
    x = torch.randn(2, 3, 96, 160)
    deployed = deploy_model(model, channels_last=channels_last)
    with torch.inference_mode():
        expected = model(x)
        actual = deployed(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    assert (actual - expected).abs().max().item() <= 1e-4
    assert model.training is False and any(
        isinstance(m, nn.BatchNorm2d) for m in model.modules()
    )  # untouched


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_deploy_matches_eager_on_cuda_with_amp(exp48):
    torch.manual_seed(0)
    model = RegSeg(exp48).cuda()
    randomise_batchnorm(model)
    model.eval()
    x = torch.randn(1, 3, 256, 512, device="cuda")
    deployed = deploy_model(model, channels_last=True)
    with torch.inference_mode():
        expected = model(x)
        assert (deployed(x) - expected).abs().max().item() <= 1e-4
        with torch.autocast("cuda", dtype=torch.float16):
            approx = deployed(x.contiguous(memory_format=torch.channels_last)).float()
    assert (approx - expected).abs().max().item() <= 5e-2
