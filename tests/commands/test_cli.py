"""The real commands in a subprocess: output, exit codes, one-line errors, nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from dilnas.command_help import PRESETS_DIR, preset_commands
from tests.helpers import EXP48_PATH, REPO
from tests.helpers.commands import assert_one_line_error, run
from tests.helpers.fake_data import write_camvid_tree


def test_info_table(tmp_path):
    result = run("dilnas.info", f"arch={EXP48_PATH}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "parameters     3,334,951" in result.stdout
    assert "MACs           38.353 G at 1x3x1024x2048" in result.stdout
    assert "field of view  3807 px" in result.stdout
    assert list(tmp_path.iterdir()) == []  # a read-only command writes nothing


def test_info_json_with_overrides():
    result = run(
        "dilnas.info", f"arch={EXP48_PATH}", "num_classes=11", "input_size=[512,1024]", "format=json"
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["params"] == 3_334_431
    assert round(info["macs"] / 1e9, 2) == 9.57  # convolutions, 11 classes; 9.770 G counts all ops at 19
    assert info["field_of_view"] == 3807
    assert len(info["blocks"]) == 18
    assert info["blocks"][5]["dilations"] == [1] and info["blocks"][5]["bound"] == 3
    assert info["blocks"][17]["bound"] == 209 and info["blocks"][17]["slack"] == 195


def test_info_missing_file():
    assert_one_line_error(
        run("dilnas.info", "arch=nope.json"), "dilnas-info", "nope.json: no such architecture file"
    )


def test_info_broken_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{")
    assert_one_line_error(run("dilnas.info", f"arch={path}"), "dilnas-info", "broken.json: not valid JSON")


def test_info_invalid_architecture(tmp_path, exp48_dict):
    exp48_dict["blocks"][5]["dilations"] = [5]
    exp48_dict["decoder"]["type"] = "fpn"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(exp48_dict))
    result = run("dilnas.info", f"arch={path}")
    assert_one_line_error(
        result, "dilnas-info", "blocks[5].dilations[0]: rate 5 leaves a gap", "decoder.type"
    )


def test_info_allow_gaps(tmp_path, exp48_dict):
    exp48_dict["blocks"][5]["dilations"] = [5]
    path = tmp_path / "gappy.json"
    path.write_text(json.dumps(exp48_dict))
    result = run("dilnas.info", f"arch={path}", "allow_gaps=true", "format=json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["gaps"] == 1 and info["blocks"][5]["slack"] == -2


def test_info_requires_arch():
    assert_one_line_error(run("dilnas.info"), "dilnas-info", "missing required value 'arch'")


@pytest.mark.parametrize(
    "module, override, fragments",
    [
        ("dilnas.info", "num_classes=abc", ["override num_classes=abc", "could not be converted to Integer"]),
        ("dilnas.info", "bogus=1", ["Could not override 'bogus'", "Key 'bogus' not in 'InfoConfig'"]),
        ("dilnas.info", "input_size=[1,", ["override 'input_size=[1,'"]),
        (
            "dilnas.retrain",
            "data=nope",
            ["Could not find 'data/nope'", "choose one of: camvid, cityscapes, folder, synthetic"],
        ),
        ("dilnas.search", "search=nope", ["Could not find 'search/nope'", "choose one of: default"]),
        ("dilnas.info", "+bogus=1", ["unknown config key 'bogus'"]),
        ("dilnas.retrain", "+optim.lrr=0.1", ["unknown config key 'optim.lrr'"]),
    ],
)
def test_hydra_compose_errors_are_one_line(tmp_path, module, override, fragments):
    program = module.replace(".", "-")
    result = run(module, f"arch={EXP48_PATH}", override, cwd=tmp_path)
    assert_one_line_error(result, program, *fragments)
    assert "_schema" not in result.stderr  # the dataclass schemas are not choices
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no run directory left behind


def test_a_run_that_fails_on_bad_input_leaves_no_run_directory(tmp_path):
    result = run("dilnas.retrain", "arch=nothere.json", cwd=tmp_path)
    assert_one_line_error(result, "dilnas-retrain", "nothere.json: no such architecture file")
    assert list(tmp_path.iterdir()) == []  # Hydra made runs/retrain/<time>; all of it was removed


def test_hydra_full_error_keeps_hydras_report():
    result = subprocess.run(
        [sys.executable, "-m", "dilnas.info", f"arch={EXP48_PATH}", "num_classes=abc"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert (
        result.returncode == 1
        and "Traceback" in result.stderr
        and "ConfigCompositionException" in result.stderr
    )


def test_bench_infer_json():
    result = run(
        "dilnas.bench",
        "infer",
        f"arch={EXP48_PATH}",
        "input_size=[64,128]",
        "repeats=2",
        "warmup=1",
        "device=cpu",
        "format=json",
        "onnxruntime=false",  # its row exports to ONNX first (seconds): test_deploy_export.py has it
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    modes = [row["mode"] for row in report["rows"]]
    assert modes == ["eager fp32", "deploy fp32", "deploy fp32 channels_last"]
    assert all(row["max_abs_diff"] <= 1e-4 for row in report["rows"])
    assert report["rows"][0]["speedup"] == 1.0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train"], "unknown mode 'train'; allowed: infer"),
        (["infer", "arch=none.json"], "none.json: no such"),
    ],
)
def test_bench_errors(args, fragment):
    assert_one_line_error(run("dilnas.bench", *args), "dilnas-bench", fragment)


def test_bench_search_json():
    result = run(
        "dilnas.bench",
        "search",
        "spaces=[synthetic_tiny]",
        "crops=[64]",
        "batch_sizes=[2]",
        "repeats=1",
        "warmup=0",
        "device=cpu",
        "format=json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [row["mode"] for row in rows] == ["fixed (derived)", "supernet softmax", "supernet gumbel"]
    assert rows[0]["time_ratio"] == 1.0 and all(row["memory_mb"] > 0 for row in rows)
    assert rows[1]["memory_ratio"] >= rows[2]["memory_ratio"]  # softmax keeps every candidate's output


def test_bench_data_json(tmp_path):
    root = write_camvid_tree(tmp_path / "camvid")
    result = run(
        "dilnas.bench",
        "data",
        f"data.root={root}",
        "data.train_split=train",
        "data.scale_range=[32,64]",
        "data.crop_size=[32,64]",
        "batch_size=2",
        "repeats=2",
        "format=json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = report["rows"]
    assert [row["what"] for row in rows] == ["read, decoding", "read, cached", "train step"]
    assert rows[0]["ratio"] == 1.0 and all(row["median_ms"] > 0 for row in rows)
    assert report["arch"] == "camvid_lite-2-5-5-5" and report["data"] == "camvid"
    # a batch larger than the split, and data that is never decoded: one line each
    assert_one_line_error(
        run("dilnas.bench", "data", f"data.root={root}", "data.train_split=train", "batch_size=3"),
        "dilnas-bench",
        "batch_size=3 is larger than the 2 images of train",
    )
    assert_one_line_error(run("dilnas.bench", "data", "data=synthetic"), "dilnas-bench", "nothing is decoded")


@pytest.mark.parametrize("args", [["format=json"], ["--help"]])  # in the command, and in Hydra's own output
def test_a_reader_that_goes_away_is_a_quiet_exit(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `dilnas-info ... | head -0`
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dilnas.info", f"arch={EXP48_PATH}", *args],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1 and result.stderr == ""


def readme_python_blocks() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]


@pytest.mark.slow
def test_readme_notebook_api_block_runs(tmp_path):
    block = readme_python_blocks()[0]
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # the commands' own summaries, then the block's prints
    assert any(re.fullmatch(r"/.*/runs/api/search/arch\.json \d+ \d+\.\d+", line) for line in lines)
    assert lines[-1].startswith("(1, 3, 64, 64) ")
    assert (tmp_path / "runs" / "api" / "retrain" / "checkpoints" / "best.pt").is_file()


def test_readme_layers_python_block_runs():
    block = readme_python_blocks()[1]
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10", "[2,", "6]"]


@pytest.mark.parametrize(
    ("module", "mode", "groups"),
    [
        ("dilnas.search", [], ["search", "data", "optim", "trainer", "+experiment"]),
        ("dilnas.retrain", [], ["data", "optim", "trainer", "+experiment"]),
        ("dilnas.export", [], []),
        ("dilnas.predict", [], []),
        ("dilnas.deploy", [], []),
        ("dilnas.info", [], []),
        ("dilnas.plot", [], []),
        ("dilnas.report", [], []),
        ("dilnas.grid", [], []),
        ("dilnas.bench", ["infer"], []),
        ("dilnas.bench", ["search"], []),
        ("dilnas.bench", ["data"], ["data"]),
    ],
)
def test_help_teaches_from_the_schema(module, mode, groups):
    result = run(module, *mode, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "_schema" not in text
    assert text.splitlines()[0].startswith(f"{module.replace('dilnas.', 'dilnas-')}")  # what it does
    assert len(text.split("examples:\n", 1)[1].split("\n\n")[0].splitlines()) >= 2
    settings = text.split("settings (KEY=VALUE; default, then what it means):\n", 1)[1].split("\n\n")[0]
    assert all(len(line.split(None, 2)) == 3 for line in settings.splitlines())  # key, default, meaning
    listed = [
        line.split()[0] for line in text.split("config groups", 1)[-1].split("\n\n")[0].splitlines()[1:]
    ]
    assert listed == groups or (not groups and "config groups" not in text)


def test_help_lists_only_the_presets_made_for_the_command():
    def presets(module: str) -> set[str]:
        line = next(line for line in run(module, "--help").stdout.splitlines() if "+experiment " in line)
        return set(line.split(None, 1)[1].split(" (presets")[0].split(", "))

    search, retrain = presets("dilnas.search"), presets("dilnas.retrain")
    assert {"camvid_lite_search", "quick", "slurm"} == search
    assert {"camvid_lite", "cityscapes_best", "quick"} <= retrain and "camvid_lite_search" not in retrain
    # Every preset says what it is for, and only commands that take presets.
    for path in PRESETS_DIR.glob("*.yaml"):
        assert set(preset_commands(path)) and set(preset_commands(path)) <= {
            "dilnas-search",
            "dilnas-retrain",
        }
    assert search | retrain == {path.stem for path in PRESETS_DIR.glob("*.yaml")}


def test_retrain_help_says_which_bound_ends_the_run_with_the_composed_defaults():
    text = run("dilnas.retrain", "--help").stdout
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  trainer.")}
    assert "when set it bounds the run instead of epochs" in lines["trainer.max_steps"]
    assert lines["trainer.max_steps"].split()[1] == "600"  # trainer=synthetic's value, not the schema's null


@pytest.mark.parametrize(
    ("line", "expected"), [("dilnas-search data=", "data=synthetic"), ("dilnas-search ", "trainer.")]
)
def test_tab_completion_offers_no_internal_schema(line, expected):
    result = subprocess.run(
        [sys.executable, "-m", "dilnas.search", "-sc", "query=bash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COMP_LINE": line},
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout and "_schema" not in result.stdout
