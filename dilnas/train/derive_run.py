"""Derivation after the fact: the architecture a search run's checkpoint derives with any rule, and its
export beside the search's own ``arch.json``. ``dilnas-export`` and ``dilnas.api.derive`` both call it.

Where the rule picks what the search picked at that checkpoint, the held-out selection recorded with it
(``search.select_top``) applies too, so the default export gives the search's result; another rule gives its
pick alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from dilnas.models.weights import arch_logits
from dilnas.spec.arch import ArchSpec, save_arch
from dilnas.spec.derivation import derive_rates
from dilnas.spec.options import DeriveRule, ExportConfig, SearchRunConfig
from dilnas.spec.space import SearchSpace, load_space
from dilnas.train.run_dir import RunDir
from dilnas.train.selection import Selection, selected_arch
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError
from dilnas.utils.provenance import stamp


def export_arch(config: ExportConfig) -> tuple[Path, ArchSpec]:
    """Derive with ``config``'s rule and write the architecture (``<run>/arch_<rule>.json`` or ``out=``);
    never over the search's own ``arch.json``. Returns where it went and what it is."""
    run_dir = RunDir(config.run_dir)
    checkpoint = Path(config.checkpoint) if config.checkpoint else run_dir.last
    arch = derive_from_run(run_dir, config.rule, config.topk, checkpoint)
    search = arch.search or {}
    out = Path(config.out) if config.out else run_dir.exported_arch(search["rule"], checkpoint)
    if out.resolve() == run_dir.arch.resolve():
        raise UserError(f"out={out}: that is the search's own {run_dir.arch.name}; choose another file")
    save_arch(arch, out)
    return out, arch


def derive_from_run(
    run_dir: RunDir,
    rule: DeriveRule | None = None,
    topk: int | None = None,
    checkpoint: Path | None = None,
) -> ArchSpec:
    """The architecture derived from a search run's checkpoint (default ``last.pt``) with ``rule`` and
    ``topk`` (default: the run's own)."""
    if not run_dir.is_search_run():
        raise UserError(f"{run_dir.path}: not a dilnas-search run directory (no {run_dir.space.name})")
    space = load_space(run_dir.space)
    run_config = run_dir.read_config(SearchRunConfig)
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
    rule = rule if rule is not None else run_config.search.rule
    topk = topk if topk is not None else run_config.search.topk
    if topk < 1:
        raise UserError(f"topk={topk}: expected a number of rates >= 1")
    num_classes = state["model"]["decoder.classifier.bias"].numel()
    if num_classes != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(num_classes))
    provenance = stamp(seed=run_config.seed, checkpoint=str(checkpoint), step=int(state["step"]))
    selection = _recorded_selection(state, space, probs, rule, topk)
    return selected_arch(space, probs, rule, topk, provenance, selection)


def _recorded_selection(
    state: dict, space: SearchSpace, probs: list[list[float]], rule: DeriveRule, topk: int
) -> Selection | None:
    """The held-out selection the search recorded with this checkpoint (its last evaluation's), when it
    shortlisted from this rule's pick: the same probabilities and pick give the same shortlist, scored with
    these very weights. None otherwise (another rule, or a checkpoint without one): the rule's pick alone."""
    selection = Selection.from_records((state.get("last_eval") or {}).get("selection"))
    if selection is None or list(selection.rule_pick.rates) != derive_rates(space, probs, rule, topk):
        return None
    return selection
