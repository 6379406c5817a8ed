"""``dilnas-info``: parameters, MACs, field of view and per-block no-gap slack of an architecture JSON."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from dilnas.analysis.arch_info import arch_info, format_info
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.arch import load_arch
from dilnas.spec.options import OutputFormat
from dilnas.spec.tool_options import InfoConfig


def run(cfg: DictConfig) -> None:
    config = typed_config(cfg, InfoConfig)
    spec = load_arch(config.arch, allow_gaps=config.allow_gaps)
    if config.num_classes is not None:
        spec = spec.with_num_classes(config.num_classes)
    info = arch_info(spec, config.input_size)
    print(json.dumps(info, indent=2) if config.format is OutputFormat.json else format_info(info))


EXAMPLES = (
    "dilnas-info arch=exp48_decoder26",
    "dilnas-info arch=runs/search/DATE/arch.json input_size=[224,224] format=json",
)
main = hydra_command("dilnas-info", "info", run, EXAMPLES)

if __name__ == "__main__":
    main()
