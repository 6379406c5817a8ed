"""Every setting is documented and range-checked from one declaration (dilnas.spec.settings): a value out of
range is refused in one line that names the key and the range, before anything is written."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from dilnas.cli import typed_config
from dilnas.spec.schemas import SCHEMAS
from dilnas.spec.settings import MISSING, Range, describe_settings
from dilnas.utils.errors import UserError
from tests.helpers import REPO
from tests.helpers.commands import SEARCH_RUN

COMMAND_SCHEMAS = [schema for _, group, schema in SCHEMAS if group is None]


def ranged_settings(schema: type, prefix: str = "") -> list[tuple[str, Range, dataclasses.Field]]:
    found = []
    for item in dataclasses.fields(schema):
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default):
            found += ranged_settings(type(default), f"{prefix}{item.name}.")
        elif "range" in item.metadata:
            found.append((f"{prefix}{item.name}", item.metadata["range"], item))
    return found


def out_of_range(allowed: Range) -> float:
    if allowed.low is not None:
        return allowed.low if allowed.low_open else allowed.low - 1
    if allowed.high is not None:
        return allowed.high if allowed.high_open else allowed.high + 1
    return float("inf")


def filled(schema: type):
    """The schema's config with every required value given (they are paths and names, not numbers)."""
    cfg = OmegaConf.structured(schema)
    for key, value in OmegaConf.to_container(cfg).items():
        if value == MISSING:
            cfg[key] = "x"
    return cfg


@pytest.mark.parametrize("schema", COMMAND_SCHEMAS, ids=lambda s: s.__name__)
def test_every_setting_is_documented_and_the_defaults_are_in_range(schema):
    docs = list(describe_settings(schema))
    assert docs and all(doc.doc for doc in docs), [doc.key for doc in docs if not doc.doc]
    typed_config(filled(schema), schema)  # the defaults pass their own ranges


@pytest.mark.parametrize("schema", COMMAND_SCHEMAS, ids=lambda s: s.__name__)
def test_numbers_out_of_range_are_refused_naming_key_and_range(schema):
    settings = ranged_settings(schema)
    for key, allowed, item in settings:
        cfg = filled(schema)
        bad = out_of_range(allowed)
        current = OmegaConf.select(cfg, key)
        if "list" in str(item.type):  # each element is checked: spoil the first
            value = [bad, *(list(current) if current is not None else [1, 1])[1:]]
        else:
            value = int(bad) if "int" in str(item.type) and bad != float("inf") else bad
        OmegaConf.update(cfg, key, value, force_add=False)
        with pytest.raises(UserError) as caught:
            typed_config(cfg, schema)
        message = str(caught.value)
        assert message.startswith(f"{key}=") and "expected" in message and "\n" not in message, message


def test_list_lengths_and_non_finite_numbers_are_refused():
    cfg = filled(COMMAND_SCHEMAS[0])  # InfoConfig
    cfg.input_size = [64]
    with pytest.raises(UserError, match=r"^input_size=\[64\]: expected 2 numbers, each a number >= 1$"):
        typed_config(cfg, COMMAND_SCHEMAS[0])
    search = next(schema for schema in COMMAND_SCHEMAS if schema.__name__ == "SearchRunConfig")
    cfg = filled(search)
    cfg.optim.lr = float("nan")
    with pytest.raises(UserError, match=r"^optim\.lr=nan: expected a number > 0$"):
        typed_config(cfg, search)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        (
            "dilnas.retrain",
            ["arch=exp48_decoder26", "trainer.max_steps=0"],
            "trainer.max_steps=0: expected a number >= 1",
        ),
        ("dilnas.search", ["search.temperature_end=0"], "search.temperature_end=0.0: expected a number > 0"),
        (
            "dilnas.search",
            [*SEARCH_RUN, "trainer.epochs=1"],  # SEARCH_RUN warms up for 1 epoch
            "search.warmup_epochs=1 leaves no architecture step: the warm-up takes 4 steps and the search ends "
            "after 4 (trainer.epochs=1 of 4 steps)",
        ),
    ],
)
def test_range_errors_exit_2_in_one_line_and_write_nothing(tmp_path, module, args, message):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # a space's padding warning may come first
    assert message in last and "Traceback" not in result.stderr
    assert not run_dir.exists()
