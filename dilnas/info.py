"""``dilnas-info``: parameters, MACs, field of view and per-block no-gap slack of an architecture JSON."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from dilnas.analysis.arch_info import arch_info, format_info
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.arch import load_arch
from dilnas.spec.options import InfoConfig, OutputFormat
from dilnas.utils.errors import UserError


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, InfoConfig)
    if len(config.input_size) != 2 or min(config.input_size) < 1:
        raise UserError(f"input_size={config.input_size}: expected [HEIGHT,WIDTH] with positive integers")
    if config.num_classes is not None and config.num_classes < 1:
        raise UserError(f"num_classes={config.num_classes}: expected a positive integer")
    spec = load_arch(config.arch, allow_gaps=config.allow_gaps)
    if config.num_classes is not None:
        spec = spec.with_num_classes(config.num_classes)
    info = arch_info(spec, config.input_size)
    print(json.dumps(info, indent=2) if config.format is OutputFormat.json else format_info(info))


main = hydra_command("dilnas-info", "info", run)

if __name__ == "__main__":
    main()
