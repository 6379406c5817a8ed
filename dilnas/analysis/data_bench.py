"""Reading a training batch of a real data set with and without ``data.cache``, beside one training step of a
network on such a batch, side by side: what the decoding costs, and what share of a step the data takes.

A batch is ``batch_size`` samples read (decoded, augmented with the training transform, stacked) in the main
process, as ``data.num_workers=0`` reads them; the cached data set decodes every image when it is built. The
step is forward, backward and SGD update of ``arch`` on the batch, on the CPU.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from dilnas.analysis.timing import time_alternating
from dilnas.data.dataset import LabelledDataset
from dilnas.data.factory import build_dataset
from dilnas.data.transforms import IGNORE_INDEX
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.spec.options import DataConfig, DataName
from dilnas.utils.errors import UserError
from dilnas.utils.tables import format_table

READ = "read, decoding"
CACHED = "read, cached"
STEP = "train step"


@dataclass(frozen=True)
class DataRow:
    what: str
    median_ms: float
    ratio: float  # median over rounds of this row's time / the decoding read's, in the same round
    ratio_low: float  # the smallest and the largest per-round ratio: their spread
    ratio_high: float


def bench_data(
    data: DataConfig,
    spec: ArchSpec,
    batch_size: int,
    warmup: int,
    rounds: int,
    seed: int,
    announce: Callable[[str], None] | None = None,
) -> list[DataRow]:
    """The three rows, measured in rotating order (``time_alternating``); ``announce`` is told what is timed
    once the data set is found and the input checked."""
    if data.name is DataName.synthetic:
        raise UserError(
            "data=synthetic is drawn in memory, nothing is decoded: pass data=camvid, cityscapes or folder"
        )
    plain = build_dataset(dataclasses.replace(data, cache=False), data.train_split, train=True)
    if len(plain) < batch_size:
        raise UserError(
            f"batch_size={batch_size} is larger than the {len(plain)} images of {data.train_split}"
        )
    cached = build_dataset(dataclasses.replace(data, cache=True), data.train_split, train=True)

    def read(dataset: LabelledDataset) -> tuple[torch.Tensor, torch.Tensor]:
        samples = []
        for index in range(batch_size):
            torch.manual_seed(seed + index)  # the same crops and flips each time, for both readers
            samples.append(dataset[index])
        return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])

    if announce is not None:
        announce(f"a batch of {batch_size} from {data.name.value} {data.train_split} ({len(plain)} images)")
    images, labels = read(plain)
    model = RegSeg(spec.with_num_classes(len(plain.class_names))).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    timings = time_alternating(
        {READ: lambda: read(plain), CACHED: lambda: read(cached), STEP: step},
        torch.device("cpu"),
        warmup=warmup,
        rounds=rounds,
    )
    rows = []
    for name in (READ, CACHED, STEP):
        ratios = timings.ratios(name, READ)
        rows.append(
            DataRow(name, timings.median_ms(name), statistics.median(ratios), min(ratios), max(ratios))
        )
    return rows


def data_share(rows: list[DataRow]) -> tuple[float, float]:
    """The data's share of a step (read + train step) when decoding and when cached."""
    ms = {row.what: row.median_ms for row in rows}
    return ms[READ] / (ms[READ] + ms[STEP]), ms[CACHED] / (ms[CACHED] + ms[STEP])


def format_data_rows(rows: list[DataRow]) -> str:
    cells = [
        [r.what, f"{r.median_ms:.1f}", f"{r.ratio:.2f}x", f"{r.ratio_low:.2f}-{r.ratio_high:.2f}"]
        for r in rows
    ]
    table = format_table(["per batch", "median ms", "ratio to decoding", "spread"], cells)
    decoding, cached = data_share(rows)
    return f"{table}\ndata's share of a step: {decoding:.0%} decoding, {cached:.0%} cached"


def rows_as_dicts(rows: list[DataRow]) -> list[dict]:
    return [asdict(row) for row in rows]
