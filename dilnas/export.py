"""``dilnas-export run_dir=RUN [rule=argmax|expected|topk] [topk=K] [checkpoint=PATH] [out=PATH]``:
derive the architecture again from any checkpoint of a search run, with any rule, into
``<run>/arch_<rule>.json`` (or ``out=``); the search's own ``arch.json`` is never rewritten. Where the rule picks
what the search picked at that checkpoint, the held-out selection recorded with it (``search.select_top``)
applies too, so ``dilnas-export run_dir=RUN`` gives the search's result; another rule gives its pick alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dilnas.cli import hydra_command, typed_config
from dilnas.models.weights import arch_logits
from dilnas.spec.arch import ArchSpec, save_arch
from dilnas.spec.derivation import RULES, derive_arch, derive_rates
from dilnas.spec.options import ExportConfig
from dilnas.spec.space import SearchSpace, load_space
from dilnas.train.run_dir import RunDir
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError


def export_arch(config: ExportConfig) -> Path:
    run_dir = RunDir(config.run_dir)
    checkpoint = Path(config.checkpoint) if config.checkpoint else run_dir.last
    arch = derive_from_run(run_dir, config.rule.value if config.rule else None, config.topk, checkpoint)
    search = arch.search or {}
    out = Path(config.out) if config.out else run_dir.exported_arch(search["rule"], checkpoint)
    if out.resolve() == run_dir.arch.resolve():
        raise UserError(f"out={out}: that is the search's own {run_dir.arch.name}; choose another file")
    save_arch(arch, out)
    print(
        f"{out}: dilations {[list(b.dilations) for b in arch.blocks]}, field of view {arch.field_of_view} px"
    )
    return out


def derive_from_run(
    run_dir: RunDir, rule: str | None = None, topk: int | None = None, checkpoint: Path | None = None
) -> ArchSpec:
    """The architecture derived from a search run's checkpoint (default ``last.pt``) with ``rule`` and
    ``topk`` (default: the run's own)."""
    if not run_dir.is_search_run():
        raise UserError(f"{run_dir.path}: not a dilnas-search run directory (no {run_dir.space.name})")
    space = load_space(run_dir.space)
    if not run_dir.config.is_file():
        raise UserError(f"{run_dir.path}: no {run_dir.config.name} (the search writes it when it starts)")
    run_config = OmegaConf.load(run_dir.config)
    checkpoint = checkpoint or run_dir.last
    state = load_checkpoint(checkpoint)
    found = arch_logits(state["model"], len(space.branches))
    logits = [alpha for alpha in found if alpha is not None]
    if len(logits) != len(found):
        raise UserError(
            f"{checkpoint}: no architecture logits for the {len(space.branches)} branches of {space.name}"
        )
    if [alpha.numel() for alpha in logits] != [len(branch.candidates) for branch in space.branches]:
        raise UserError(f"{checkpoint}: its logits do not match the candidates of {run_dir.space}")
    probs = [torch.softmax(alpha.float(), dim=0).tolist() for alpha in logits]
    rule = rule if rule is not None else str(run_config.search.rule)
    if rule not in RULES:
        raise UserError(f"rule={rule!r}: expected one of {', '.join(RULES)}")
    topk = topk if topk is not None else int(run_config.search.topk)
    if topk < 1:
        raise UserError(f"topk={topk}: expected a number of rates >= 1")
    num_classes = state["model"]["decoder.classifier.bias"].numel()
    if num_classes != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(num_classes))
    provenance = {"seed": int(run_config.seed), "checkpoint": str(checkpoint), "step": int(state["step"])}
    return derive_arch(
        space, probs, rule, topk, provenance=provenance, selection=_selection(state, space, probs, rule, topk)
    )


def _selection(
    state: dict, space: SearchSpace, probs: list[list[float]], rule: str, topk: int
) -> list[dict] | None:
    """The held-out selection the search recorded with this checkpoint (its last evaluation's), when it
    shortlisted from this rule's pick: the same probabilities and pick give the same shortlist, scored with
    these very weights. None otherwise (another rule, or a checkpoint without one): the rule's pick alone."""
    selection = (state.get("last_eval") or {}).get("selection")
    if not selection or list(selection[0]["rates"]) != derive_rates(space, probs, rule, topk):
        return None
    return selection


def run(cfg: DictConfig) -> None:
    export_arch(typed_config(cfg, ExportConfig))


EXAMPLES = (
    "dilnas-export run_dir=runs/search/DATE rule=expected       # writes arch_expected.json",
    "dilnas-export run_dir=runs/search/DATE checkpoint=runs/search/DATE/checkpoints/best.pt out=best.json",
)
main = hydra_command("dilnas-export", "export", run, EXAMPLES)

if __name__ == "__main__":
    main()
