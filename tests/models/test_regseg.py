"""RegSeg built from JSON reproduces the reference implementation's numbers exactly."""

from __future__ import annotations

import pytest
import torch

from dilnas.analysis.complexity import count_macs, count_parameters
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from tests.helpers import EXP53_PATH


def test_exp48_parameters(exp48):
    model = RegSeg(exp48)
    assert count_parameters(model) == 3_334_951
    assert count_parameters(model.stem) == 928
    assert count_parameters(model.body) == 3_159_076
    assert count_parameters(model.decoder) == 174_947
    assert count_parameters(RegSeg(exp48.with_num_classes(11))) == 3_334_431


def test_exp48_per_block_parameters(exp48):
    per_block = [count_parameters(block) for block in RegSeg(exp48).body.blocks]
    assert per_block[:2] == [13_496, 51_340]
    assert per_block[2:4] == [60_320, 60_320]
    assert per_block[4] == 186_656
    assert per_block[5:17] == [202_560] * 12
    assert per_block[17] == 356_224


def test_exp53_parameters():
    assert count_parameters(RegSeg(load_arch(EXP53_PATH))) == 6_131_579


def test_dilations_change_neither_parameters_nor_macs(exp48):
    from dataclasses import replace

    undilated = replace(
        exp48, blocks=tuple(replace(b, dilations=(1,) * len(b.dilations)) for b in exp48.blocks)
    )
    shape = (1, 3, 256, 512)
    assert count_parameters(RegSeg(undilated)) == count_parameters(RegSeg(exp48))
    assert count_macs(RegSeg(undilated), shape) == count_macs(RegSeg(exp48), shape)


def test_exp48_macs_at_1024x2048(exp48):
    with torch.device("meta"):
        model = RegSeg(exp48)
    assert round(count_macs(model, (1, 3, 1024, 2048)) / 1e9, 3) == 38.353


def test_feature_and_output_shapes_at_1024x2048(exp48):
    with torch.device("meta"):
        model = RegSeg(exp48)
        x = torch.empty(1, 3, 1024, 2048)
        x4, x8, x16 = model.body(model.stem(x))
        logits = model(x)
    assert tuple(x4.shape[1:]) == (48, 256, 512)
    assert tuple(x8.shape[1:]) == (128, 128, 256)
    assert tuple(x16.shape[1:]) == (320, 64, 128)
    assert tuple(logits.shape) == (1, 19, 1024, 2048)


@pytest.mark.parametrize("size", [(64, 96), (77, 101)])
def test_forward_and_backward_on_odd_sizes(exp48, size):
    torch.manual_seed(0)
    model = RegSeg(exp48.with_num_classes(3))
    x = torch.randn(2, 3, *size)
    out = model(x)
    assert out.shape == (2, 3, *size)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_two_branch_block_splits_channels_in_order(exp48):
    torch.manual_seed(0)
    block = RegSeg(exp48).body.blocks[6].conv2  # dilations (1, 2), 256 channels -> two halves of 128
    x = torch.randn(1, 256, 20, 20)
    out = block(x)
    first, second = block.convs
    assert first.dilation == (1, 1) and second.dilation == (2, 2)
    torch.testing.assert_close(out[:, :128], first(x[:, :128]))
    torch.testing.assert_close(out[:, 128:], second(x[:, 128:]))
