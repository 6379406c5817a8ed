"""Bad input, class by class: refused in one line naming the file, key or value and what is allowed, exit
status 2, no traceback, and nothing written or rewritten. (Numbers out of range: tests/spec/test_settings.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_text
from tests.helpers import ENV, REPO, SYNTHETIC, TINY
from tests.helpers.commands import SEARCH_RUN, TINY_RUN

DILATED = SYNTHETIC / "tiny_dilated.json"


def run(module: str, *args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )


def assert_refused(result: subprocess.CompletedProcess, program: str, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]  # a space's padding warning may come first
    assert line.startswith(f"{program}: error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run but its log (a refused command may append a warning to it)."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return {name: data for name, data in files.items() if not name.endswith(".log")}


# ---- resume: another run is refused before anything is rewritten ------------------------------------
@pytest.mark.slow
def test_resume_with_another_architecture_or_data_is_refused_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = run("dilnas.retrain", *TINY_RUN, "trainer.max_steps=2", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr
    before = snapshot(run_dir)
    assert {"config.yaml", "arch.json", ".hydra/overrides.yaml"} <= set(before)
    for changed, fragment in [
        (f"arch={DILATED}", "arch.json differs from the run's"),
        ("data.image_size=96", "data.image_size (64 then, 96 now)"),
        ("seed=5", "seed (0 then, 5 now)"),
    ]:
        args = [*TINY_RUN, changed, "trainer.max_steps=3", "resume=true", f"hydra.run.dir={run_dir}"]
        result = run("dilnas.retrain", *args)  # the last arch= wins
        assert_refused(result, "dilnas-retrain", "resume=true:", "holds another run", fragment)
        assert snapshot(run_dir) == before
    # What may change between a run and its resumption: its length, the loader processes.
    longer = run(
        "dilnas.retrain",
        *TINY_RUN,
        "trainer.max_steps=3",
        "data.num_workers=0",
        "resume=true",
        f"hydra.run.dir={run_dir}",
    )
    assert longer.returncode == 0, longer.stderr


@pytest.mark.slow
def test_resume_search_with_another_space_is_refused(tmp_path):
    run_dir = tmp_path / "search"
    first = run(
        "dilnas.search",
        *SEARCH_RUN,
        "trainer.max_steps=2",
        "search.warmup_epochs=0",
        f"hydra.run.dir={run_dir}",
    )
    assert first.returncode == 0, first.stderr
    before = snapshot(run_dir)
    result = run(
        "dilnas.search",
        *SEARCH_RUN,
        "trainer.max_steps=4",
        "search.warmup_epochs=0",
        "search.space=synthetic_deep",
        "resume=true",
        f"hydra.run.dir={run_dir}",
    )
    assert_refused(result, "dilnas-search", "space.yaml differs from the run's")
    assert snapshot(run_dir) == before


# ---- checkpoints: non-finite weights and unsafe files -----------------------------------------------
def tiny_state(tmp_path: Path, poison: bool) -> Path:
    state = RegSeg(load_arch(TINY)).state_dict()
    if poison:
        state = {
            key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
            for key, value in state.items()
        }
    path = tmp_path / ("nan.pt" if poison else "ok.pt")
    torch.save({"model": state}, path)
    return path


def test_non_finite_or_pickled_checkpoints_are_refused_naming_file_and_tensor(tmp_path):
    poisoned = tiny_state(tmp_path, poison=True)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": {"stem.conv.weight": torch.ones(1)}, "extra": object()}, pickled)
    for args, fragments in [
        (
            ["eval_only=true", f"checkpoint={poisoned}"],
            [f"{poisoned}: tensor 'stem.conv.weight' holds non-finite values"],
        ),
        (
            [f"init={poisoned}", "trainer.max_steps=1"],
            [f"{poisoned}: tensor 'stem.conv.weight' holds non-finite"],
        ),
        ([f"init={pickled}", "trainer.max_steps=1"], [f"{pickled}: not a weights-only checkpoint"]),
    ]:
        run_dir = tmp_path / "run"
        result = run("dilnas.retrain", *TINY_RUN, *args, f"hydra.run.dir={run_dir}")
        assert_refused(result, "dilnas-retrain", *fragments)
        assert "weights_only" not in result.stderr and "Warning" not in result.stderr
        assert not run_dir.exists()


@pytest.mark.slow
def test_resume_from_a_non_finite_checkpoint_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    assert run("dilnas.retrain", *TINY_RUN, "trainer.max_steps=2", f"hydra.run.dir={run_dir}").returncode == 0
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["model"]["decoder.classifier.weight"].fill_(float("inf"))
    torch.save(state, last)
    before = snapshot(run_dir)
    result = run(
        "dilnas.retrain", *TINY_RUN, "trainer.max_steps=3", "resume=true", f"hydra.run.dir={run_dir}"
    )
    assert_refused(
        result, "dilnas-retrain", f"{last}: tensor 'decoder.classifier.weight' holds non-finite values"
    )
    assert snapshot(run_dir) == before


# ---- where output goes: a file in the way, a parent that cannot be written ---------------------------
def test_output_where_it_cannot_go_is_refused_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    cases = [
        ("dilnas.search", [*SEARCH_RUN, f"hydra.run.dir={blocker}"], f"{blocker}: a file is in the way"),
        (
            "dilnas.retrain",
            [*TINY_RUN, f"hydra.run.dir={blocker / 'run'}"],
            f"{blocker / 'run'}: a file is in the way",
        ),
        ("dilnas.grid", [f"out={blocker / 'grid'}", "stage=write"], f"{blocker / 'grid'}"),
    ]
    for module, args, fragment in cases:
        result = run(module, *args, cwd=tmp_path)
        assert_refused(result, module.replace("dilnas.", "dilnas-"), fragment)
    assert blocker.read_text() == "not a directory\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a-file"
    ]


def test_atomic_write_into_an_unwritable_place_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"file/out\.json: cannot write here: a file is in the way"):
        atomic_write_text(tmp_path / "file" / "out.json", "{}")
    with pytest.raises(UserError, match=r"cannot write here: "):
        atomic_write_text("/proc/dilnas-cannot-exist/out.json", "{}")  # refused even to root


# ---- files: duplicate keys, deep nesting, alias bombs, huge files ------------------------------------
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        (
            "dup.json",
            '{"format": "dilnas.arch", "format": "dilnas.arch"}',
            "not valid JSON: duplicate key 'format'",
        ),
        ("deep.json", "[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
        ("deep2.json", "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("bomb.yaml", BOMB, "expands to more than 100,000 values (YAML aliases?)"),
        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 32 levels"),
        ("huge.json", '{"x": "' + "y" * (5 * 2**20) + '"}', "larger than the 4,194,304 bytes"),
    ],
)
def test_hostile_files_are_refused_quickly_with_a_limit(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    if name.endswith(".json"):
        result = run("dilnas.info", f"arch={path}")
        assert_refused(result, "dilnas-info", str(path), fragment)
    else:
        result = run("dilnas.search", f"search.space={path}", f"hydra.run.dir={tmp_path / 'run'}")
        assert_refused(result, "dilnas-search", str(path), fragment)
        assert not (tmp_path / "run").exists()


# ---- Hydra: flags that do not go together, presets without '+', misspelled keys ----------------------
@pytest.mark.parametrize(
    ("module", "args", "fragments"),
    [
        (
            "dilnas.search",
            ["--cfg", "job", "-m", "seed=0,1"],
            ["--cfg prints one job's config and cannot be combined with -m"],
        ),
        (
            "dilnas.retrain",
            ["experiment=cityscapes", "arch=exp48_decoder26"],
            ["experiment is an optional preset", "+experiment=NAME"],
        ),
        ("dilnas.search", ["trainer.batchsize=4"], ["'trainer.batchsize'", "did you mean 'batch_size'?"]),
        ("dilnas.search", ["serch.arch_lr=0.1"], ["did you mean 'search'?"]),
        (
            "dilnas.retrain",
            ["arch=exp48_decoder26", "+optim.learning_rate=0.1"],
            ["unknown config key 'optim.learning_rate'"],
        ),
        ("dilnas.search", ["+seeed=3"], ["unknown config key 'seeed'", "did you mean 'seed'?"]),
    ],
)
def test_hydra_mistakes_get_a_hint(tmp_path, module, args, fragments):
    result = run(module, *args, cwd=tmp_path)
    assert_refused(result, module.replace("dilnas.", "dilnas-"), *fragments)
    assert list(tmp_path.iterdir()) == []


# ---- sizes that would need absurd memory: refused with the memory they would need --------------------
def test_absurd_sizes_are_refused_with_the_memory_they_need(tmp_path):
    huge = json.loads(TINY.read_text())
    for block in huge["blocks"]:
        block["in_channels"] *= 512
        block["out_channels"] *= 512
    huge["stem"]["out_channels"] *= 512
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(huge))
    cases = [
        (
            "dilnas.retrain",
            [f"arch={path}", f"hydra.run.dir={tmp_path / 'run'}"],
            "training tiny_rate1 would need about",
        ),
        (
            "dilnas.bench",
            ["infer", "arch=exp48_decoder26", "input_size=[100000,100000]"],
            "activations 17,150.3 GiB",
        ),
    ]
    for module, args, fragment in cases:
        line = assert_refused(
            run(module, *args, cwd=tmp_path), module.replace("dilnas.", "dilnas-"), fragment
        )
        assert "GiB of this machine's memory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.json"]
