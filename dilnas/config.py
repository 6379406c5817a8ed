"""Dataclass schemas of every command's config, registered in Hydra's ConfigStore.

Compose rejects unknown keys and wrong types against these; ``dilnas.cli.typed_config`` then turns the
composed config into the dataclass, so library functions never see a DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class InfoConfig:
    """dilnas-info: parameters, MACs, field of view and per-block no-gap slack of an architecture."""

    arch: str = MISSING
    num_classes: int | None = None
    input_size: list[int] = field(default_factory=lambda: [1024, 2048])
    format: OutputFormat = OutputFormat.table
    allow_gaps: bool = False


@dataclass
class BenchInferConfig:
    """dilnas-bench infer: forward-pass time, eager vs deploy (BN folded, inference mode)."""

    arch: str = MISSING
    num_classes: int | None = None
    input_size: list[int] = field(default_factory=lambda: [1024, 2048])
    batch_size: int = 1
    device: DeviceChoice = DeviceChoice.auto
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    seed: int = 0
    format: OutputFormat = OutputFormat.table
    allow_gaps: bool = False


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="info_schema", node=InfoConfig)
    store.store(name="bench_infer_schema", node=BenchInferConfig)


register_configs()
