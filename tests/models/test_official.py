"""The public RegSeg checkpoint layout loads into dilnas' RegSeg and exports back unchanged."""

from __future__ import annotations

import pytest
import torch

from dilnas.models.official import (
    expected_official_shapes,
    from_official_state_dict,
    load_official_checkpoint,
    to_official_state_dict,
)
from dilnas.models.regseg import RegSeg
from dilnas.models.weights import CheckpointLayoutError
from dilnas.spec.arch import load_arch
from dilnas.utils.errors import UserError
from tests.helpers import EXP53_PATH, OFFICIAL_TSV


def official_layout() -> dict[str, tuple[int, ...]]:
    lines = OFFICIAL_TSV.read_text().splitlines()
    assert lines[0] == "key\tshape"
    layout = {}
    for line in lines[1:]:
        key, shape = line.split("\t")
        layout[key] = tuple(int(n) for n in shape.split("x")) if shape else ()
    return layout


def random_official_state(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        key: torch.randint(0, 1000, shape, generator=generator)
        if key.endswith("num_batches_tracked")
        else torch.rand(shape, generator=generator) + 0.1
        for key, shape in layout.items()
    }


def test_expected_layout_is_the_official_one(exp48):
    layout = official_layout()
    assert len(layout) == 470
    assert expected_official_shapes(exp48) == layout


def test_load_and_export_round_trip(exp48):
    state = random_official_state(official_layout())
    model = RegSeg(exp48)
    result = model.load_state_dict(from_official_state_dict(exp48, state))
    assert not result.missing_keys and not result.unexpected_keys
    exported = to_official_state_dict(model)
    assert exported.keys() == state.keys()
    for key, tensor in state.items():
        assert torch.equal(exported[key], tensor.to(exported[key].dtype)), key


def test_loaded_weights_land_in_the_right_modules(exp48):
    state = random_official_state(official_layout())
    model = RegSeg(exp48)
    model.load_state_dict(from_official_state_dict(exp48, state))
    assert torch.equal(model.body.blocks[0].conv2.convs[0].weight, state["body.stage4.conv2.weight"])
    assert torch.equal(model.body.blocks[3].se.conv1.bias, state["body.stage8.2.se.conv1.bias"])
    assert torch.equal(
        model.body.blocks[17].conv2.convs[1].weight, state["body.stage16.13.conv2.convs.1.weight"]
    )
    assert torch.equal(model.decoder.classifier.weight, state["decoder.classifier.weight"])


def test_larger_variant_has_indexed_stage4():
    shapes = expected_official_shapes(load_arch(EXP53_PATH))
    assert "body.stage4.1.conv1.weight" in shapes and "body.stage4.conv1.weight" not in shapes


def test_wrong_keys_and_shapes_are_listed(exp48):
    state = random_official_state(official_layout())
    del state["body.stage16.3.bn2.running_var"]
    state["body.stage16.3.extra.weight"] = torch.zeros(1)
    state["decoder.classifier.weight"] = torch.zeros(11, 64, 1, 1)
    with pytest.raises(CheckpointLayoutError) as caught:
        from_official_state_dict(exp48, state, source="ckpt.pth")
    error = caught.value
    assert error.missing == ["body.stage16.3.bn2.running_var"]
    assert error.unexpected == ["body.stage16.3.extra.weight"]
    assert error.mismatched == ["decoder.classifier.weight (11, 64, 1, 1) (expected (19, 64, 1, 1))"]
    message = str(error)
    assert message.startswith("ckpt.pth: state dict does not fit exp48_decoder26: 1 missing keys:")
    assert "\n" not in message


def test_load_checkpoint_file_with_model_entry_and_ddp_prefix(tmp_path, exp48):
    state = random_official_state(official_layout())
    path = tmp_path / "best.pth"
    torch.save({"model": {f"module.{key}": value for key, value in state.items()}, "epoch": 3}, path)
    model = RegSeg(exp48)
    load_official_checkpoint(model, path)
    assert torch.equal(model.stem.conv.weight, state["stem.conv.weight"])


def test_load_checkpoint_refuses_pickled_code(tmp_path, exp48):
    path = tmp_path / "evil.pth"
    torch.save({"model": object()}, path)  # not loadable with weights_only=True
    with pytest.raises(UserError, match=r"evil\.pth: not a weights-only checkpoint") as caught:
        load_official_checkpoint(RegSeg(exp48), path)
    assert "weights_only=False" not in str(caught.value)  # torch's advice to load code is not repeated
    with pytest.raises(UserError, match="no such checkpoint file"):
        load_official_checkpoint(RegSeg(exp48), tmp_path / "absent.pth")
