"""``dilnas-export run_dir=RUN [rule=argmax|expected|topk] [topk=K] [checkpoint=PATH] [out=PATH]``:
derive the architecture again from any checkpoint of a search run, with any rule, into
``<run>/arch_<rule>.json`` (or ``out=``); the search's own ``arch.json`` is never rewritten. Where the rule picks
what the search picked at that checkpoint, the held-out selection recorded with it (``search.select_top``)
applies too, so ``dilnas-export run_dir=RUN`` gives the search's result; another rule gives its pick alone."""

from __future__ import annotations

from omegaconf import DictConfig

from dilnas.cli import hydra_command, typed_config
from dilnas.spec.gapless import rates_text
from dilnas.spec.options import ExportConfig
from dilnas.train.derive_run import export_arch


def run(cfg: DictConfig) -> None:
    out, arch = export_arch(typed_config(cfg, ExportConfig))
    branches = (arch.search or {})["branches"]
    picked = rates_text(list(branches), [entry["choice"] for entry in branches.values()])
    print(f"{out}: dilations {picked}, field of view {arch.field_of_view} px")


EXAMPLES = (
    "dilnas-export run_dir=runs/search/DATE rule=expected       # writes arch_expected.json",
    "dilnas-export run_dir=runs/search/DATE checkpoint=runs/search/DATE/checkpoints/best.pt out=best.json",
)
main = hydra_command("dilnas-export", "export", run, EXAMPLES)

if __name__ == "__main__":
    main()
