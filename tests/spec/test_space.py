"""Search spaces: the shipped YAML files, candidate sets under the no-gap rule, validation, padding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from dilnas.analysis.complexity import count_parameters
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchError, load_arch
from dilnas.spec.fov import padding_fraction
from dilnas.spec.space import (
    SEARCH_SPACES_DIR,
    SearchSpace,
    SpaceError,
    auto_candidates,
    available_spaces,
    load_space,
    parse_space,
)
from dilnas.utils.errors import UserError
from tests.helpers import EXP48_PATH, SYNTHETIC

PAPER_RATES = [1, 2, 4, 4, 4, 4] + [14] * 7  # exp48; block 5 has a second branch at rate 1 in the space
TINY = {
    "format": "dilnas.space",
    "schema_version": 1,
    "name": "tiny",
    "num_classes": 3,
    "search_crop": [128, 128],
    "stem": {"in_channels": 3, "out_channels": 16, "kernel_size": 3, "stride": 2},
    "decoder": {"type": "decoder26"},
    "blocks": [
        {"stride": 2, "in_channels": 16, "out_channels": 24, "group_width": 8, "dilations": [1]},
        {"stride": 2, "in_channels": 24, "out_channels": 48, "group_width": 8, "dilations": [1]},
        {"stride": 1, "in_channels": 48, "out_channels": 48, "group_width": 8, "dilations": [1]},
        {"stride": 2, "in_channels": 48, "out_channels": 64, "group_width": 8, "dilations": [1]},
        {
            "repeat": 4,
            "stride": 1,
            "in_channels": 64,
            "out_channels": 64,
            "group_width": 8,
            "dilations": [1, "auto"],
        },
    ],
}  # blocks 4..7 sit at output stride 16; the field before block 4 is k = 47, s = 16: bound 2


def tiny(**changes) -> dict:
    data = json.loads(json.dumps(TINY))
    data.update(changes)
    return data


def with_dilations(dilations: list, repeat: int = 4) -> dict:
    data = tiny()
    data["blocks"][4].update(dilations=dilations, repeat=repeat)
    return data


def problems_of(data: dict) -> str:
    with pytest.raises(SpaceError) as caught:
        parse_space(data, source="space.yaml")
    message = str(caught.value)
    assert message.startswith("space.yaml: invalid search space: ") and "\n" not in message
    return message


@pytest.fixture(scope="module")
def exp48_space() -> SearchSpace:
    return load_space("regseg_exp48")


# ---- the shipped spaces ------------------------------------------------------------------------------
def test_shipped_spaces_load():
    assert {"regseg_exp48", "synthetic_tiny"} <= set(available_spaces())
    for name in ("regseg_exp48", "synthetic_tiny"):
        space = load_space(name)
        assert space.name == name and space.description
        assert load_space(SEARCH_SPACES_DIR / f"{name}.yaml").digest == space.digest


def test_exp48_space_candidates(exp48_space):
    branches = exp48_space.branches
    assert [(b.block, b.branch) for b in branches] == [(index, 1) for index in range(5, 18)]
    assert branches[0].key == "block5.b1"
    # k = 63, s = 16 before block 5 (Gao, arXiv 2111.09957): bound 3.
    assert branches[0].bound == 3 and branches[0].candidates == (1, 2, 3)
    # Block 5 at its largest candidate 3: k = 63 + 2*3*16 = 159, bound 9.
    assert branches[1].bound == (63 + 2 * 3 * 16) // 16 == 9
    assert branches[1].candidates == tuple(range(1, 10))
    assert branches[2].bound == (159 + 2 * 9 * 16) // 16 == 27
    assert [len(b.candidates) for b in branches] == [3, 9] + [16] * 11
    assert all(b.candidates == tuple(range(1, 17)) for b in branches[2:])
    assert exp48_space.search_crop == (768, 768)
    assert exp48_space.padding_warnings() == []  # 48x48 features: rates up to 16 keep most taps inside
    small = exp48_space.padding_warnings((128, 128))  # 8x8 features: from rate 4 up, mostly padding
    assert len(small) == 12 and all("training crop 128x128" in w and "4 (56%)" in w for w in small[1:])
    assert exp48_space.base.num_classes == 19 and len(exp48_space.base.blocks) == 18
    assert all(rate == 1 for block in exp48_space.base.blocks for rate in block.dilations)


def test_exp48_space_contains_the_paper_network(exp48_space):
    spec = exp48_space.arch_with(PAPER_RATES)
    assert spec.field_of_view == 3807
    with torch.device("meta"):
        assert count_parameters(RegSeg(spec)) == 3_334_951
    paper = load_arch(EXP48_PATH)
    # The same network apart from block 5's split into two branches of 128 channels.
    assert spec.blocks[6:] == paper.blocks[6:] and spec.blocks[5].dilations == (1, 1)
    assert (spec.stem, spec.decoder, spec.num_classes) == (paper.stem, paper.decoder, paper.num_classes)
    assert spec.name.startswith("regseg_exp48") and exp48_space.arch_with(PAPER_RATES, "x").name == "x"


def test_synthetic_tiny_space():
    space = load_space("synthetic_tiny")
    assert [b.candidates for b in space.branches] == [(1, 2), tuple(range(1, 7))]
    assert [b.bound for b in space.branches] == [2, 6]
    assert space.arch_with([1, 1]).blocks == load_arch(SYNTHETIC / "tiny_short_rate1.json").blocks
    assert space.arch_with([2, 4]).blocks == load_arch(SYNTHETIC / "tiny_short_dilated.json").blocks
    # The default search (224x224, 14x14 features): rate 6 has 49% of its nine taps outside, no warning.
    assert space.padding_warnings() == []
    warnings = space.padding_warnings((64, 64))  # data.image_size=64: 4x4 features
    assert len(warnings) == 2 and all("training crop 64x64" in w and "4x4" in w for w in warnings)
    assert warnings[1].startswith("blocks[5].dilations[1]:") and "2 (56%), 3 (75%)" in warnings[1]
    assert "1 (" not in warnings[1]


def test_to_dict_is_json_ready(exp48_space):
    summary = json.loads(json.dumps(exp48_space.to_dict()))
    assert summary["name"] == "regseg_exp48" and summary["digest"] == exp48_space.digest
    assert summary["branches"][0] == {
        "key": "block5.b1",
        "block": 5,
        "branch": 1,
        "candidates": [1, 2, 3],
        "bound": 3,
    }


# ---- arch_with --------------------------------------------------------------------------------------
def test_arch_with_rejects_wrong_count_non_candidates_and_gaps(exp48_space):
    with pytest.raises(ArchError, match=r"rates: expected 13"):
        exp48_space.arch_with([1, 2])
    with pytest.raises(
        ArchError, match=r"blocks\[5\]\.dilations\[1\]: rate 4 is not a candidate.*allowed: 1\.\.3"
    ):
        exp48_space.arch_with([4, *PAPER_RATES[1:]])
    with pytest.raises(ArchError, match=r"rate 2\.0 is not a candidate"):
        exp48_space.arch_with([1, 2.0, *PAPER_RATES[2:]])
    # 9 is a candidate of block 6 (its bound assumes block 5 at 3), but after block 5 at 1 it leaves a gap.
    with pytest.raises(ArchError, match=r"blocks\[6\]\.dilations\[1\]: rate 9 leaves a gap"):
        exp48_space.arch_with([1, 9, *PAPER_RATES[2:]])
    assert exp48_space.arch_with([3, 9, *PAPER_RATES[2:]]).gaps() == []
    assert exp48_space.arch_with([torch.tensor(1), *PAPER_RATES[1:]]).blocks[5].dilations == (1, 1)


# ---- candidate sets ---------------------------------------------------------------------------------
def test_auto_capping_and_thinning():
    assert auto_candidates(9) == tuple(range(1, 10))
    assert auto_candidates(27, maximum=16, step=4) == (1, 5, 9, 13, 16)
    assert auto_candidates(6, maximum=16, step=2) == (1, 3, 5, 6)
    assert auto_candidates(2, maximum=8, step=3) == (1, 2)
    assert auto_candidates(0) == ()
    space = parse_space(with_dilations([1, {"auto": True, "max": 8, "step": 3}]))
    assert [b.candidates for b in space.branches] == [(1, 2), (1, 4, 6), (1, 4, 7, 8), (1, 4, 7, 8)]


def test_explicit_candidates_and_fixed_rates():
    space = parse_space(with_dilations([[2, 1], 1], repeat=1))
    assert [(b.key, b.candidates, b.bound) for b in space.branches] == [("block4.b0", (1, 2), 2)]
    assert space.base.blocks[4].dilations == (1, 1)  # the smallest candidate
    message = problems_of(with_dilations([1, [1, 4]], repeat=1))
    assert (
        "blocks[4].dilations[1]: candidate 4 is above the no-gap bound 2 of this block "
        "(r*s <= k at the largest reachable field of view); allowed: 1..2" in message
    )
    assert "blocks[4].dilations[1]: rate 3 leaves a gap" in problems_of(with_dilations([1, 3], repeat=1))


def test_bounds_follow_the_largest_reachable_field():
    data = with_dilations([1, [1, 2]], repeat=1)
    data["blocks"].append(
        {"stride": 1, "in_channels": 64, "out_channels": 64, "group_width": 8, "dilations": [1, [1, 6]]}
    )
    assert [b.bound for b in parse_space(data).branches] == [2, 6]  # (47 + 2*2*16) // 16
    data["blocks"][5]["dilations"] = [1, [1, 7]]
    assert "candidate 7 is above the no-gap bound 6" in problems_of(data)


def test_a_candidate_in_no_gapless_network_is_refused_at_load():
    # Block 5 can only take 6 when block 4 took 2 (bound 6); with block 4 at 1 the bound is 4, so a later
    # fixed need for 6 makes block 4's candidate 1 useless: the space names it instead of failing a search.
    data = with_dilations([1, [1, 2]], repeat=1)
    data["blocks"].append(
        {"stride": 1, "in_channels": 64, "out_channels": 64, "group_width": 8, "dilations": [1, [6]]}
    )
    assert problems_of(data) == (
        "space.yaml: invalid search space: blocks[4].dilations[1]: candidate 1 is in no gapless network of this space (with it, a later "
        "block's rate leaves a gap whatever the other branches choose); remove it"
    )
    data["blocks"][5]["dilations"] = [1, 6]  # a fixed rate binds the same way
    assert "blocks[4].dilations[1]: candidate 1 is in no gapless network" in problems_of(data)
    data["blocks"][4]["dilations"] = [1, [2]]
    assert parse_space(data).branches[0].candidates == (2,)


# ---- validation messages ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dilations", "expected"),
    [
        ([1, 0], "blocks[4..7].dilations[1]: 0 is not allowed; expected an integer rate >= 1, a list"),
        ([1, []], "blocks[4..7].dilations[1]: empty candidate list"),
        ([1, [1, -2]], "blocks[4..7].dilations[1][1]: candidate -2 is not allowed"),
        ([1, [1, 2, 2]], "blocks[4..7].dilations[1][2]: duplicate candidate 2"),
        (
            [1, {"auto": True, "cap": 4}],
            "blocks[4..7].dilations[1].cap: unknown key; allowed: auto, max, step",
        ),
        ([1, {"max": 4}], "blocks[4..7].dilations[1].auto: expected true, got None"),
        ([1, {"auto": True, "step": 0}], "blocks[4..7].dilations[1].step: 0 is not allowed"),
        ([1, "sometimes"], "'sometimes' is not allowed; expected an integer rate >= 1"),
        ([], "blocks[4..7].dilations: expected a non-empty list"),
    ],
)
def test_bad_dilation_entries(dilations, expected):
    assert expected in problems_of(with_dilations(dilations))


def test_every_problem_reported_with_its_path():
    data = tiny(colour="red", search_crop=[128])
    data["stem"]["stride"] = 3
    data["blocks"][1]["grup_width"] = 8
    data["blocks"][2]["in_channels"] = 40
    data["blocks"][4]["out_channels"] = 60  # two branches of 30: not divisible by group width 8
    message = problems_of(data)
    for expected in (
        "colour: unknown key; allowed: format, schema_version, name, num_classes",
        "search_crop: expected [height, width]",
        "stem.stride: 3 is not allowed; allowed: 1, 2",
        "blocks[1].grup_width: unknown key; allowed: stride, in_channels, out_channels, dilations",
        "blocks[2].in_channels: 40 does not match blocks[1].out_channels = 48",
        "blocks[4..7].out_channels: 60 split into 2 branch(es) of 30 channels is not divisible by group_width 8",
        "blocks[5].in_channels: 64 does not match blocks[4].out_channels = 60",
    ):
        assert expected in message


def test_repeat_expansion_indices():
    data = tiny()
    data["blocks"][4]["repeat"] = 2
    data["blocks"].append(
        {"stride": 1, "in_channels": 64, "out_channels": 64, "group_width": 8, "dilations": [1, [1, 40]]}
    )
    message = problems_of(data)
    assert "blocks[6].dilations[1]: candidate 40 is above the no-gap bound 18" in message  # not blocks[5]
    assert "blocks[4].repeat: 0 is not allowed; expected 1..256" in problems_of(with_dilations([1, 2], 0))
    only_first = problems_of(with_dilations([1, 3], 2))  # bound 2 at block 4, then 7: only block 4 gaps
    assert "blocks[4].dilations[1]: rate 3 leaves a gap" in only_first and "blocks[5]" not in only_first


def test_format_version_and_top_level():
    assert "format: expected 'dilnas.space', got 'dilnas.arch'" in problems_of(tiny(format="dilnas.arch"))
    assert "schema_version: unknown version 2" in problems_of(tiny(schema_version=2))
    assert "$: expected a mapping, got list" in problems_of([])  # type: ignore[arg-type]
    assert "num_classes: missing" in problems_of({k: v for k, v in TINY.items() if k != "num_classes"})


# ---- files ------------------------------------------------------------------------------------------
def test_unknown_name_lists_available_spaces():
    with pytest.raises(
        UserError, match=r"unknown search space 'regseg_exp99'; available: .*regseg_exp48.*synthetic_tiny"
    ):
        load_space("regseg_exp99")
    with pytest.raises(UserError, match=r"nowhere\.yaml: no such search space file"):
        load_space("/nowhere.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format: dilnas.space\nblocks: [1, 2\n", "not valid YAML: "),
        ("format: dilnas.space\nformat: dilnas.space\n", "not valid YAML: duplicate key 'format' at line 2"),
        ("!!python/object:os.system {}\n", "not valid YAML"),  # safe_load: never constructs objects
        ("", "invalid search space: $: expected a mapping, got null"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_space(str(path))
    assert str(caught.value).startswith(str(path)) and expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_digest_is_stable_and_follows_the_content(tmp_path: Path):
    path = tmp_path / "space.yml"
    path.write_text(yaml.safe_dump(TINY))
    first = load_space(path).digest
    assert load_space(str(path)).digest == first and len(first) == 64
    path.write_text("# a comment changes nothing\n" + yaml.safe_dump(TINY, sort_keys=False))
    assert load_space(path).digest == first
    path.write_text(yaml.safe_dump(with_dilations([1, {"auto": True, "max": 4}])))
    assert load_space(path).digest != first


# ---- padding ----------------------------------------------------------------------------------------
def test_padding_fraction():
    with pytest.raises(ValueError):
        padding_fraction(0, 8, 8)
    with pytest.raises(ValueError):
        padding_fraction(1, 0, 8)
    assert padding_fraction(8, 8, 8) == 1.0 and padding_fraction(20, 8, 12) == 1.0
    assert padding_fraction(1, 256, 256) < 0.01
    # Per axis 1/2 of positions keep the tap: axial taps 1/2 outside, diagonal 3/4; mean 5/8.
    assert padding_fraction(4, 8, 8) == pytest.approx(5 / 8)
    assert padding_fraction(16, 48, 48) == pytest.approx(4 / 9)  # exp48's cap at its 768 crop
    assert padding_fraction(3, 8, 1000) < padding_fraction(3, 8, 8)


def test_padding_warning_for_a_large_candidate_on_a_small_crop():
    space = parse_space(with_dilations([1, [1, 2]], repeat=1) | {"search_crop": [64, 64]})
    (warning,) = space.padding_warnings()  # 4x4 features at output stride 16
    assert warning.startswith("blocks[4].dilations[1]:") and "4x4" in warning and "64x64" in warning
    assert "2 (56%)" in warning and "1 (" not in warning  # of the nine taps: 8/9 of 62%; rate 1: 30%
    assert parse_space(with_dilations([1, [1, 2]], repeat=1) | {"search_crop": None}).padding_warnings() == []
