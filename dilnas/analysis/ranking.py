"""Ranking diagnostics: how well a search run's supernet orders the architectures of a ground-truth table.

Every architecture of the table becomes a network with the supernet's weights, its BatchNorm statistics
re-estimated on the search's calibration images, and is scored on the run's held-out split: the computation of
the search's held-out selection (``dilnas.train.selection``). The scores, and the logits' sum of
log-probabilities, are compared with the table's mean mIoU (``dilnas.analysis.rank_stats``): the held-out scores
twice, by mIoU and by mean cross-entropy (the smoother of the two), beside the
ceiling the table's own seed noise sets. ``split=eval`` scores on the data's evaluation split instead (a
diagnostic: is the held-out sample what limits the ranking?).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dilnas.analysis.ground_truth_table import ArchResult, read_table
from dilnas.analysis.rank_stats import Agreement, agreement, seed_ceiling
from dilnas.data.factory import build_dataset
from dilnas.models.supernet import SuperNet
from dilnas.models.weights import arch_logits
from dilnas.spec.gapless import parse_rates_key
from dilnas.spec.options import Relaxation, SearchRunConfig
from dilnas.spec.space import SearchSpace, load_space
from dilnas.spec.tool_options import RankConfig, RankSplit
from dilnas.train.distributed import resolve_device
from dilnas.train.run_dir import RunDir
from dilnas.train.search_run import search_data
from dilnas.train.selection import calibration_batches, score_architectures
from dilnas.utils.checkpoints import load_checkpoint
from dilnas.utils.errors import UserError
from dilnas.utils.files import atomic_write_json

log = logging.getLogger("dilnas")
RANK = "rank.json"
Progress = Callable[[int, int, str, float], None]


@dataclasses.dataclass(frozen=True)
class RunScores:
    """One supernet's scores of architectures (keyed as in the table: ``1-2-4-4``)."""

    checkpoint: Path
    heldout: dict[str, float]  # mIoU with the supernet's weights
    losses: dict[str, float]  # mean cross-entropy, the same scoring
    log_prob: dict[str, float]  # the logits' sum of log-probabilities


def rank_run(config: RankConfig, progress: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """Score the table's architectures with the run's supernet, compare, write the report; returns where it
    went and what it holds. ``progress(done, total, arch, miou)`` after each architecture."""
    table = read_table(Path(config.ground_truth), len(_run_space(config).branches))
    scores = score_run(config, sorted(table), progress)
    run_dir = RunDir(config.run_dir).path
    out = Path(config.out) if config.out else run_dir / RANK
    report = {
        "run_dir": str(run_dir),
        "ground_truth": str(config.ground_truth),
        "checkpoint": str(scores.checkpoint),
        **compare_scores(scores, table, config),
        "bn_batches": config.bn_batches,
        "split": config.split.value,
    }
    atomic_write_json(out, report)
    return out, report


def score_run(config: RankConfig, archs: Sequence[str], progress: Progress | None = None) -> RunScores:
    """Score ``archs`` (every one in the run's search space, else a ``UserError`` naming it) with the
    supernet of ``config.run_dir``, as the search's selection scores its shortlist."""
    space = _run_space(config)
    rates = {arch: _rates_in_space(space, arch, config.ground_truth) for arch in archs}
    run_dir = RunDir(config.run_dir)
    checkpoint = Path(config.checkpoint) if config.checkpoint else run_dir.last
    if config.threads:
        torch.set_num_threads(config.threads)
    state = load_checkpoint(checkpoint)["model"]  # read once: the weights and the logits
    device = resolve_device(config.device)
    heldout, losses = _heldout_scores(
        run_dir, space, state, rates, device, config.bn_batches, config.split, progress
    )
    return RunScores(checkpoint, heldout, losses, _log_probabilities(state, space, rates))


def compare_scores(scores: RunScores, table: dict[str, ArchResult], config: RankConfig) -> dict[str, Any]:
    """The report's comparison of ``scores`` (of every architecture of ``table``) with the table's means:
    the per-architecture rows, each score's agreement (``heldout``, ``heldout_loss``, ``log_prob``), the
    table's seed ceiling and the bootstrap's settings."""
    mious = {arch: list(result.mious) for arch, result in table.items()}
    return {
        "archs": [
            {
                "arch": arch,
                "mean": table[arch].mean,
                "seeds": len(table[arch].mious),
                "heldout_miou": scores.heldout[arch],
                "heldout_loss": scores.losses[arch],
                "log_prob": scores.log_prob[arch],
            }
            for arch in sorted(table)
        ],
        "heldout": _agreement(scores.heldout, mious, config),
        "heldout_loss": _agreement({arch: -loss for arch, loss in scores.losses.items()}, mious, config),
        "log_prob": _agreement(scores.log_prob, mious, config),
        "ceiling": _ceiling(table),
        "bootstrap": {"samples": config.bootstrap, "seed": config.seed, "level": 0.9},
    }


def in_space(space: SearchSpace, arch: str) -> bool:
    """Whether every rate of ``arch`` is a candidate of its branch in ``space``."""
    rates = parse_rates_key(arch)
    return len(rates) == len(space.branches) and all(
        rate in branch.candidates for rate, branch in zip(rates, space.branches, strict=True)
    )


def _run_space(config: RankConfig) -> SearchSpace:
    run_dir = RunDir(config.run_dir)
    if not run_dir.is_search_run():
        raise UserError(
            f"run_dir={run_dir.path}: not a dilnas-search run directory (no {run_dir.space.name})"
        )
    return load_space(run_dir.space)


def _rates_in_space(space: SearchSpace, arch: str, table: str) -> tuple[int, ...]:
    rates = parse_rates_key(arch)
    wrong = [
        f"{rate} for {branch.key} (candidates {', '.join(map(str, branch.candidates))})"
        for rate, branch in zip(rates, space.branches, strict=True)
        if rate not in branch.candidates
    ]
    if wrong:
        raise UserError(f"{table}: arch {arch} is not in search space {space.name}: {'; '.join(wrong)}")
    return rates


def _heldout_scores(
    run_dir: RunDir,
    space: SearchSpace,
    state: dict[str, torch.Tensor],
    rates: dict[str, tuple[int, ...]],
    device: torch.device,
    bn_batches: int | None = None,
    split: RankSplit = RankSplit.heldout,
    progress: Progress | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Each architecture's held-out mIoU with the supernet's weights, as the search's selection scores it
    (BatchNorm re-estimated on ``bn_batches`` batches, None: the run's own number), and its mean held-out
    cross-entropy; ``split=eval``: both on the data's evaluation split instead."""
    run_config = run_dir.read_config(SearchRunConfig)
    data = search_data(
        dataclasses.replace(run_config, data=dataclasses.replace(run_config.data, num_workers=0))
    )
    if len(data.class_names) != space.base.num_classes:
        space = dataclasses.replace(space, base=space.base.with_num_classes(len(data.class_names)))
    supernet = SuperNet(space, Relaxation.softmax, run_config.search.shared_kernel)
    supernet.load_state_dict(state)
    supernet.to(device)
    trainer = run_config.trainer
    count = run_config.search.gap_bn_batches if bn_batches is None else bn_batches
    batches = calibration_batches(data.train_set, run_config.seed, count, trainer.batch_size, device)
    scored_on = data.heldout_eval
    if split is RankSplit.eval:
        scored_on = build_dataset(run_config.data, run_config.data.eval_split, train=False)
    loader = DataLoader(scored_on, batch_size=trainer.eval_batch_size)
    scores, losses = {}, {}
    for number, (arch, chosen) in enumerate(rates.items(), start=1):
        (scored,) = score_architectures(
            supernet, [chosen], batches, loader, data.class_names, device, with_loss=True
        )
        if "loss" not in scored:  # no labelled pixel in the split scored on
            which = (
                "held-out split"
                if split is RankSplit.heldout
                else f"evaluation split ({run_config.data.eval_split})"
            )
            raise UserError(f"run_dir={run_dir.path}: its {which} has no labelled pixels to score on")
        scores[arch], losses[arch] = float(scored["miou"]), float(scored["loss"])
        if progress is not None:
            progress(number, len(rates), arch, scores[arch])
    return scores, losses


def _log_probabilities(
    state: dict[str, torch.Tensor], space: SearchSpace, rates: dict[str, tuple[int, ...]]
) -> dict[str, float]:
    """Each architecture's sum over branches of the log-probability of its rate under the logits."""
    found = arch_logits(state, len(space.branches))
    if any(
        alpha is None or alpha.numel() != len(b.candidates)
        for alpha, b in zip(found, space.branches, strict=True)
    ):
        raise UserError(
            f"the checkpoint holds no logits for the {len(space.branches)} branches of {space.name}"
        )
    log_probs = [torch.log_softmax(alpha.float(), dim=0).tolist() for alpha in found if alpha is not None]
    return {
        arch: math.fsum(
            row[branch.candidates.index(rate)]
            for row, branch, rate in zip(log_probs, space.branches, chosen, strict=True)
        )
        for arch, chosen in rates.items()
    }


def _agreement(score: dict[str, float], mious: dict[str, list[float]], config: RankConfig) -> dict[str, Any]:
    found: Agreement = agreement(score, mious, samples=config.bootstrap, seed=config.seed, top=config.top)
    return {
        "kendall": found.kendall,
        "kendall_interval": list(found.kendall_interval),
        "spearman": found.spearman,
        "spearman_interval": list(found.spearman_interval),
        "top_overlap": found.top_overlap,
        "top": config.top,
    }


def _ceiling(table: dict[str, ArchResult]) -> dict[str, Any]:
    tau, pairs = seed_ceiling(lambda arch, seed: table[arch].miou_of(seed), sorted(table))
    return {"kendall": tau, "seeds": [0, 1], "archs": pairs}
