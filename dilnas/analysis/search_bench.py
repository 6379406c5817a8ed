"""Training-step cost of the supernet against the derived fixed network of the same shape, side by side.

One step = forward, backward and SGD update. Memory: on CUDA the peak allocated memory of the step; on CPU
(which has no peak counter) the bytes of the tensors autograd saves for the backward pass, which is what
grows with the number of candidates computed.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch
from torch import nn

from dilnas.analysis.timing import time_alternating
from dilnas.models.regseg import RegSeg
from dilnas.models.supernet import SuperNet
from dilnas.spec.options import Relaxation
from dilnas.spec.space import SearchSpace
from dilnas.utils.tables import format_table


@dataclass(frozen=True)
class StepRow:
    space: str
    mode: str
    crop: int
    batch_size: int
    median_ms: float
    time_ratio: float  # median over rounds of this step's time / the fixed network's, in the same round
    time_ratio_low: float  # the smallest and the largest per-round ratio: their spread
    time_ratio_high: float
    memory_mb: float
    memory_ratio: float
    max_candidates: int


def _saved_bytes(step) -> int:
    """Bytes of the tensors autograd saves during one forward (distinct storages counted once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(seen.values())


def _peak_bytes(step, device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _saved_bytes(step)


def _step_fn(model: nn.Module, params, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss(ignore_index=255)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()

    return step


def bench_search_step(
    space: SearchSpace,
    crop: int,
    batch_size: int,
    device: torch.device,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
) -> list[StepRow]:
    torch.manual_seed(seed)
    classes = space.base.num_classes
    x = torch.randn(batch_size, space.base.stem.in_channels, crop, crop, device=device)
    y = torch.randint(0, classes, (batch_size, crop, crop), device=device)
    middle = [branch.candidates[len(branch.candidates) // 2] for branch in space.branches]
    fixed = RegSeg(space.arch_with(middle)).to(device).train()
    variants: list[tuple[str, nn.Module, object]] = [("fixed (derived)", fixed, fixed.parameters())]
    for relaxation in Relaxation:
        supernet = SuperNet(space, relaxation).to(device).train()
        variants.append((f"supernet {relaxation.value}", supernet, list(supernet.weight_parameters())))
    steps = {mode: _step_fn(model, params, x, y) for mode, model, params in variants}
    timed = time_alternating(steps, device, warmup, repeats)  # rotating order, round after round
    memory = {mode: _peak_bytes(step, device) for mode, step in steps.items()}
    base = variants[0][0]
    rows: list[StepRow] = []
    for mode in steps:
        ratios = timed.ratios(mode, base)
        rows.append(
            StepRow(
                space=space.name,
                mode=mode,
                crop=crop,
                batch_size=batch_size,
                median_ms=timed.median_ms(mode),
                time_ratio=statistics.median(ratios),
                time_ratio_low=min(ratios),
                time_ratio_high=max(ratios),
                memory_mb=memory[mode] / 2**20,
                memory_ratio=memory[mode] / memory[base],
                max_candidates=max(len(b.candidates) for b in space.branches),
            )
        )
    return rows


def format_search_rows(rows: list[StepRow], memory_label: str) -> str:
    headers = [
        "space",
        "mode",
        "crop",
        "batch",
        "median ms",
        "time ratio",
        "spread",
        memory_label,
        "memory ratio",
    ]
    cells = [
        [
            *(r.space, r.mode, r.crop, r.batch_size),
            *(
                f"{r.median_ms:.1f}",
                f"{r.time_ratio:.2f}x",
                f"{r.time_ratio_low:.2f}-{r.time_ratio_high:.2f}",
            ),
            *(f"{r.memory_mb:.1f}", f"{r.memory_ratio:.2f}x"),
        ]
        for r in rows
    ]
    return format_table(headers, cells)


def rows_as_dicts(rows: list[StepRow]) -> list[dict]:
    return [asdict(row) for row in rows]
