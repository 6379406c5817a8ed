"""Held-out selection: architectures scored with the supernet's weights on the held-out split, and the one
typed result a search keeps.

At its last evaluation a search shortlists the rule's pick and the next most probable gapless networks
(``search.select_top`` in all), scores each as a network with the supernet's weights whose BatchNorm
statistics are re-estimated on the same training images, and keeps the best (``Selection.best``). The same
scoring ranks any list of architectures (``dilnas-rank``, ``experiments/ground_truth/rescore.py``).
``Selection.to_records``/``from_records`` are the one place where a selection becomes JSON (``arch.json``'s
``search.selection``, a checkpoint's last evaluation) and comes back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import ArchSpec
from dilnas.spec.derivation import derive_arch
from dilnas.spec.options import DeriveRule
from dilnas.spec.space import SearchSpace
from dilnas.train.precision import FULL, Precision
from dilnas.train.sampling import SeededAugmentation
from dilnas.train.trainer import evaluate
from dilnas.utils.progress import progress_bar
from dilnas.utils.seeds import BN_CALIBRATION, derive_seed


@dataclass(frozen=True)
class ScoredArch:
    """One architecture (a rate per searchable branch) and its held-out mIoU with the supernet's weights."""

    rates: tuple[int, ...]
    miou: float


@dataclass(frozen=True)
class Selection:
    """A scored shortlist: the rule's pick first, then the next most probable gapless architectures."""

    scored: tuple[ScoredArch, ...]

    def __post_init__(self) -> None:
        if not self.scored:
            raise ValueError("a selection scores at least the rule's pick")

    @property
    def rule_pick(self) -> ScoredArch:
        return self.scored[0]

    @property
    def best(self) -> ScoredArch:
        """The best score; the earlier (more probable) architecture on ties."""
        return max(self.scored, key=lambda entry: (entry.miou, -self.scored.index(entry)))

    def to_records(self) -> list[dict[str, Any]]:
        return [{"rates": list(entry.rates), "miou": float(entry.miou)} for entry in self.scored]

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]] | None) -> Selection | None:
        """A selection from ``to_records``' JSON; None for none (a search with ``select_top=1``)."""
        if not records:
            return None
        return cls(tuple(ScoredArch(tuple(int(r) for r in e["rates"]), float(e["miou"])) for e in records))


def calibration_batches(
    train_set: Dataset, seed: int, num_batches: int, batch_size: int, device: torch.device
) -> list[torch.Tensor]:
    """``num_batches`` batches of augmented training images, drawn with the run's ``seed``, that re-estimate
    BatchNorm statistics before a held-out score; none when ``num_batches`` is 0 (``search.gap_bn_batches``)."""
    calibration = SeededAugmentation(train_set, derive_seed(seed, BN_CALIBRATION))
    indices = range(min(num_batches * batch_size, len(calibration)))
    if not indices:
        return []
    images = torch.stack([calibration[i][0] for i in indices]).to(device)
    return list(images.split(batch_size))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Re-estimate BatchNorm statistics (a plain average over ``batches``): the supernet's statistics were
    gathered under the mixture of rates, not under the derived network's single rates."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    model.train()
    for images in batches:
        model(images)
    model.eval()


def probe(
    model: nn.Module,
    batches: list[torch.Tensor],
    loader: DataLoader,
    class_names: Sequence[str],
    device: torch.device,
    precision: Precision = FULL,
    with_loss: bool = False,
) -> dict[str, Any]:
    """Held-out summary of ``model`` (a copy: its BatchNorm statistics are re-estimated on ``batches``); with
    ``with_loss``, its mean cross-entropy ``loss`` beside the mIoU."""
    if batches:
        recalibrate_batchnorm(model, batches)
    return evaluate(model, loader, len(class_names), device, precision, with_loss).summary(class_names)


def score_architectures(
    supernet: SuperNet,
    candidates: Sequence[Sequence[int]],
    batches: list[torch.Tensor],
    loader: DataLoader,
    class_names: Sequence[str],
    device: torch.device,
    precision: Precision = FULL,
    progress: str | None = None,
    with_loss: bool = False,
) -> list[dict[str, Any]]:
    """Each candidate (a rate per searchable branch) as a network with ``supernet``'s weights, scored on
    ``loader`` after BatchNorm re-estimation on ``batches``: its summary, with ``rates`` (and the mean
    cross-entropy ``loss`` with ``with_loss``: ``dilnas-rank`` asks for it, the search does not). ``progress``:
    the description of a progress bar over the candidates (on a terminal; none when None)."""
    space = supernet.space
    scored = []
    with progress_bar(len(candidates), progress or "", unit="net", enabled=progress is not None) as bar:
        for rates in map(list, candidates):
            network = supernet.derive_network(space.arch_with(rates), rates)
            summary = probe(network, batches, loader, class_names, device, precision, with_loss)
            scored.append({**summary, "rates": rates})
            bar.update()
    return scored


def selection_of(scored: Sequence[dict[str, Any]]) -> Selection:
    """The typed selection of ``score_architectures``' summaries (in shortlist order)."""
    return Selection(tuple(ScoredArch(tuple(entry["rates"]), float(entry["miou"])) for entry in scored))


def selected_arch(
    space: SearchSpace,
    probs: Sequence[Sequence[float]],
    rule: DeriveRule,
    k: int,
    provenance: dict[str, Any],
    selection: Selection | None,
) -> ArchSpec:
    """The derived architecture: the selection's best with the scored shortlist under ``search.selection``,
    or the rule's pick alone without a selection."""
    rates = selection.best.rates if selection else None
    arch = derive_arch(space, probs, rule, k, provenance=provenance, rates=rates)
    if selection is None:
        return arch
    return dataclasses.replace(arch, search={**(arch.search or {}), "selection": selection.to_records()})


def recorded_selection(arch: ArchSpec) -> Selection | None:
    """The selection an ``arch.json`` records (``selected_arch``), or None."""
    return Selection.from_records((arch.search or {}).get("selection"))
