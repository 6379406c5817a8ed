"""Architecture JSON: round trip, and every validation error names its JSON path and what is allowed."""

from __future__ import annotations

import json

import pytest

from dilnas.spec.arch import ArchError, ArchSpec, load_arch, save_arch
from dilnas.utils.errors import UserError
from tests.helpers import EXP48_PATH, REPO


def problems_of(data, **kwargs) -> list[str]:
    with pytest.raises(ArchError) as caught:
        ArchSpec.from_dict(data, source="x.json", **kwargs)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("x.json: invalid architecture: ")
    return caught.value.problems


def test_round_trip(tmp_path, exp48):
    spec = ArchSpec.from_dict(
        {**exp48.to_dict(), "search": {"space": "s", "probs": [[0.5, 0.5]]}, "provenance": {"seed": 3}}
    )
    path = save_arch(spec, tmp_path / "sub" / "arch.json")
    assert load_arch(path) == spec
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["arch.json"]  # no temporary file left behind


def test_shipped_files_are_written_in_the_canonical_form(exp48):
    assert EXP48_PATH.read_text() == json.dumps(exp48.to_dict(), indent=2, sort_keys=True) + "\n"


def test_shipped_architectures_go_by_name_and_their_names_are_unique():
    from dilnas.spec.arch import available_archs
    from dilnas.spec.shipped import ARCH_DIRS

    names = available_archs()
    assert {"exp48_decoder26", "tiny_short_dilated", "camvid_lite-1-2-4-4"} <= set(names)
    assert len(names) == len(set(names))  # a name never depends on which folder is searched first
    assert load_arch("tiny_short_dilated") == load_arch(
        REPO / "experiments/synthetic/tiny_short_dilated.json"
    )
    assert load_arch("camvid_lite-1-2-4-4") == load_arch(
        REPO / "experiments/camvid/reference/camvid_lite-1-2-4-4.json"
    )
    assert all(folder.is_dir() for folder in ARCH_DIRS)
    with pytest.raises(UserError, match=r"unknown architecture 'tiny'; available: .*tiny_short_dilated"):
        load_arch("tiny")


def test_unknown_keys(exp48_dict):
    exp48_dict["colour"] = "red"
    exp48_dict["blocks"][3]["kernel"] = 5
    problems = problems_of(exp48_dict)
    assert any(p.startswith("colour: unknown key; allowed: format, schema_version") for p in problems)
    assert any(p.startswith("blocks[3].kernel: unknown key; allowed: stride, in_channels") for p in problems)


def test_missing_key(exp48_dict):
    del exp48_dict["blocks"][2]["dilations"]
    assert problems_of(exp48_dict) == ["blocks[2].dilations: missing"]


def test_wrong_types(exp48_dict):
    exp48_dict["num_classes"] = "19"
    exp48_dict["blocks"][0]["se"] = "yes"
    exp48_dict["blocks"][1]["out_channels"] = 128.0
    exp48_dict["blocks"][2]["dilations"] = 1
    problems = problems_of(exp48_dict)
    assert "num_classes: expected an integer >= 1, got string '19'" in problems
    assert "blocks[0].se: expected true or false, got string 'yes'" in problems
    assert "blocks[1].out_channels: expected an integer >= 1, got number 128.0" in problems
    assert "blocks[2].dilations: expected a non-empty list of integer rates >= 1, got number" in problems


def test_channels_not_divisible_by_group_width_or_branches(exp48_dict):
    exp48_dict["blocks"][5]["out_channels"] = 200
    exp48_dict["blocks"][6]["dilations"] = [1, 2, 1]
    exp48_dict["blocks"][6]["in_channels"] = 200
    problems = problems_of(exp48_dict)
    assert any(
        "blocks[5].out_channels: 200 split into 1 branch(es) of 200 channels is not divisible by group_width 16"
        in p
        for p in problems
    )
    assert "blocks[6].out_channels: 256 is not divisible by the number of branches (3)" in problems


def test_channel_chain_must_connect(exp48_dict):
    exp48_dict["blocks"][3]["in_channels"] = 64
    assert problems_of(exp48_dict) == [
        "blocks[3].in_channels: 64 does not match blocks[2].out_channels = 128"
    ]


def test_rate_below_one(exp48_dict):
    exp48_dict["blocks"][7]["dilations"] = [1, 0]
    assert problems_of(exp48_dict) == [
        "blocks[7].dilations[1]: rate 0 is not allowed; expected an integer >= 1"
    ]


def test_unknown_decoder_and_block_type(exp48_dict):
    exp48_dict["decoder"]["type"] = "fpn"
    exp48_dict["blocks"][0]["type"] = "Y"
    problems = problems_of(exp48_dict)
    assert 'decoder.type: "fpn" is not allowed; allowed: "decoder26", "decoder29"' in problems
    assert 'blocks[0].type: "Y" is not allowed; allowed: "D"' in problems


def test_stride_must_be_one_or_two(exp48_dict):
    exp48_dict["blocks"][0]["stride"] = 3
    assert "blocks[0].stride: 3 is not allowed; allowed: 1, 2" in problems_of(exp48_dict)


def test_decoder_needs_strides_4_8_16(exp48_dict):
    exp48_dict["blocks"][-1]["stride"] = 2
    problems = problems_of(exp48_dict, allow_gaps=True)
    assert any(
        p.startswith("blocks: decoder 'decoder26' reads features at output strides 4, 8, 16")
        for p in problems
    )


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_schema_version(exp48_dict, version):
    exp48_dict["schema_version"] = version
    assert problems_of(exp48_dict) == [f"schema_version: unknown version {version}; this dilnas reads 1..1"]


def test_wrong_format(exp48_dict):
    exp48_dict["format"] = "timm.arch"
    assert problems_of(exp48_dict) == ["format: expected 'dilnas.arch', got 'timm.arch'"]


def test_gap_is_refused_unless_allowed(exp48_dict):
    exp48_dict["blocks"][5]["dilations"] = [4]  # bound 3 here (k=63, s=16)
    assert problems_of(exp48_dict) == [
        "blocks[5].dilations[0]: rate 4 leaves a gap (the no-gap bound r*s <= k before this block allows 1..3); "
        "set allow_gaps=true to accept it"
    ]
    spec = ArchSpec.from_dict(exp48_dict, allow_gaps=True)
    assert [(g.block, g.rate, g.bound) for g in spec.gaps()] == [(5, 4, 3)]


def test_every_problem_is_reported_at_once(exp48_dict):
    exp48_dict["num_classes"] = 0
    exp48_dict["decoder"]["type"] = "x"
    exp48_dict["blocks"][9]["group_width"] = -1
    assert len(problems_of(exp48_dict)) == 3


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"missing\.json: no such architecture file"):
        load_arch(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "dilnas.arch",\n "blocks": [}')
    with pytest.raises(UserError, match=r"broken\.json: not valid JSON: .* at line 2 column 13$"):
        load_arch(broken)
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    with pytest.raises(ArchError, match=r"\$: expected a JSON object, got list"):
        load_arch(not_object)
