"""``--help`` of every command, written from the sources that define it: the schema's docstring says what the
command does, each setting's ``setting(doc=...)`` says what it means (dilnas/spec/settings.py), the primary
config's defaults list names the config groups that apply, and the command gives its examples. Internal
``*_schema`` entries never appear.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from dilnas.spec.schemas import SCHEMAS
from dilnas.spec.settings import describe_settings
from dilnas.spec.shipped import CONF_DIR

SCHEMA_SUFFIX = "_schema"
WIDTH = 110


PRESETS_DIR = CONF_DIR / "experiment"
COMMANDS_LINE = "# commands:"  # a preset's header line naming the commands it is for


def preset_commands(path: Path) -> tuple[str, ...]:
    """The commands a preset declares it is for (its ``# commands: dilnas-search ...`` header line)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(COMMANDS_LINE):
            return tuple(line[len(COMMANDS_LINE) :].split())
    return ()


def presets_for(program: str) -> list[str]:
    """The ``+experiment`` presets made for ``program``, by name."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if program in preset_commands(p))


def command_help(program: str, config_name: str, examples: Sequence[str]) -> str:
    defaults = _defaults(CONF_DIR / f"{config_name}.yaml")
    schema_name = next(item for item in defaults if isinstance(item, str) and item.endswith(SCHEMA_SUFFIX))
    schema = next(node for name, group, node in SCHEMAS if name == schema_name and group is None)
    about = (schema.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    groups = {key: value for item in defaults if isinstance(item, dict) for key, value in item.items()}
    lines = [about, "", f"usage: {_invocation(program, examples)} [KEY=VALUE ...]" + _extra_usage(groups), ""]
    if groups:
        lines.append("config groups (GROUP=OPTION; the default first):")
        for group, default in groups.items():
            options = sorted(
                p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.endswith(SCHEMA_SUFFIX)
            )
            ordered = [default, *(option for option in options if option != default)]
            lines.append(f"  {group:<12} {', '.join(ordered)}")
        presets = presets_for(program)
        if presets:
            lines.append(f"  {'+experiment':<12} {', '.join(presets)} (presets; optional, note the '+')")
        lines.append("")
    composed = _compose(config_name)
    docs = [
        dataclasses.replace(doc, default=_text(OmegaConf.select(composed, doc.key, default=doc.default)))
        for doc in describe_settings(schema)
    ]
    key_width = min(max(len(doc.key) for doc in docs), 32)
    default_width = min(max(len(doc.default) for doc in docs), 18)
    lines.append("settings (KEY=VALUE; default, then what it means):")
    for doc in docs:
        lines.append(f"  {doc.key:<{key_width}}  {doc.default:<{default_width}}  {doc.doc}".rstrip())
    lines += ["", "examples:", *(f"  {example}" for example in examples), ""]
    lines.append(
        "Hydra: --cfg job prints the composed config, -m runs a sweep over comma-separated values, "
        "--hydra-help shows Hydra's own flags."
    )
    return "\n".join(lines)


def _compose(config_name: str) -> DictConfig:
    """The command's config with no overrides: the defaults its groups set, as a run would see them."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name)


def _text(value: Any) -> str:
    if isinstance(value, ListConfig):
        value = list(value)
    if isinstance(value, list):
        return "[" + ",".join(str(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value.value) if isinstance(value, Enum) else str(value)


def _extra_usage(groups: dict[str, str]) -> str:
    return " [GROUP=OPTION ...] [-m] [--cfg job]" if groups else " [--cfg job]"


def _invocation(program: str, examples: Sequence[str]) -> str:
    """How the command is called: the first example's words before its first setting (``dilnas-bench
    infer``), else the program's name."""
    words = []
    for word in examples[0].split() if examples else [program]:
        if "=" in word or word.startswith(("-", "#")):
            break
        words.append(word)
    return " ".join(words) or program


def _defaults(path: Path) -> list:
    return list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("defaults", []))
