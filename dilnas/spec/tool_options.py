"""Dataclass schemas of the tools around the search and the retraining: dilnas-info, dilnas-bench,
dilnas-predict, dilnas-deploy, dilnas-plot, dilnas-report and dilnas-grid (``dilnas.spec.options`` holds the
training and search settings; ``dilnas.spec.schemas`` registers both with Hydra). Declared like them, with
``setting(default, doc, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dilnas.spec.options import DataConfig, DeviceChoice, OutputFormat
from dilnas.spec.settings import setting


@dataclass
class InfoConfig:
    """dilnas-info: parameters, MACs, field of view and per-block no-gap slack of an architecture."""

    arch: str = setting(doc="architecture: a shipped name (exp48_decoder26) or a .json path")
    num_classes: int | None = setting(None, "classifier classes (null: the file's)", low=1)
    input_size: list[int] = setting(
        doc="[HEIGHT, WIDTH] for MACs", factory=lambda: [1024, 2048], low=1, length=2
    )
    format: OutputFormat = setting(OutputFormat.table, "table or json")
    allow_gaps: bool = setting(False, "accept an architecture that breaks the no-gap rule")


@dataclass
class BenchInferConfig:
    """dilnas-bench infer: forward-pass time, eager vs deploy (BN folded, inference mode)."""

    arch: str = setting(doc="architecture: a shipped name (exp48_decoder26) or a .json path")
    num_classes: int | None = setting(None, "classifier classes (null: the file's)", low=1)
    input_size: list[int] = setting(
        doc="[HEIGHT, WIDTH] of the input", factory=lambda: [1024, 2048], low=1, length=2
    )
    batch_size: int = setting(1, "images per forward pass", low=1)
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    warmup: int = setting(2, "untimed passes first", low=0)
    repeats: int = setting(5, "timed rounds, every row once per round in rotating order (medians)", low=1)
    threads: int | None = setting(None, "torch CPU threads (null: torch's default)", low=1)
    seed: int = setting(0, "seed of the random input and weights", low=0)
    onnxruntime: bool = setting(
        True, "add the onnxruntime rows, fp32 and int8 (CPU; need dilnas[deploy], else skipped with a note)"
    )
    format: OutputFormat = setting(OutputFormat.table, "table or json")
    allow_gaps: bool = setting(False, "accept an architecture that breaks the no-gap rule")


@dataclass
class BenchSearchConfig:
    """dilnas-bench search: one training step of the supernet (softmax, gumbel) vs the derived fixed network."""

    spaces: list[str] = setting(
        doc="search spaces to time", factory=lambda: ["synthetic_tiny", "regseg_exp48"]
    )
    crops: list[int] = setting(doc="square crop per space", factory=lambda: [224, 512], low=1)
    batch_sizes: list[int] = setting(doc="batch size per space", factory=lambda: [8, 2], low=1)
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    warmup: int = setting(2, "untimed steps first", low=0)
    repeats: int = setting(5, "timed rounds, every row once per round in rotating order (medians)", low=1)
    threads: int | None = setting(None, "torch CPU threads (null: torch's default)", low=1)
    seed: int = setting(0, "seed of the data and weights", low=0)
    format: OutputFormat = setting(OutputFormat.table, "table or json")


@dataclass
class BenchDataConfig:
    """dilnas-bench data: a training batch read with and without data.cache, beside a training step on it."""

    data: DataConfig = setting(
        doc="the data set (data=camvid|cityscapes|folder, data.root=DIR)", factory=DataConfig
    )
    arch: str = setting("camvid_lite-2-5-5-5", "the network of the train step (shipped name or JSON path)")
    batch_size: int = setting(8, "samples per batch", low=1)
    warmup: int = setting(1, "untimed rounds first", low=0)
    repeats: int = setting(5, "timed rounds, every row once per round in rotating order (medians)", low=1)
    threads: int | None = setting(1, "torch CPU threads (null: torch's default)", low=1)
    seed: int = setting(0, "seed of the crops and flips", low=0)
    format: OutputFormat = setting(OutputFormat.table, "table or json")


# ---- predictions ---------------------------------------------------------------------------------
class PaletteName(str, Enum):
    auto = "auto"  # cityscapes for 19 classes, camvid for 11, else generic
    cityscapes = "cityscapes"
    camvid = "camvid"
    generic = "generic"


@dataclass
class PredictConfig:
    """dilnas-predict: colour-coded masks and overlays of a trained network's predictions on images."""

    arch: str | None = setting(
        None, "architecture: a shipped name or a .json path (null: the one a retraining checkpoint records)"
    )
    checkpoint: str = setting(doc="weights: a dilnas retraining checkpoint or a released RegSeg one")
    images: str = setting(doc="a folder (its .png, .jpg, .jpeg files) or a glob ('photos/*.jpg')")
    out: str = setting(doc="output folder: <stem>_mask.png and <stem>_overlay.png per image")
    input_size: list[int] | None = setting(
        None, "[HEIGHT, WIDTH] the network sees (null: the image's); masks keep the image's", low=1, length=2
    )
    palette: PaletteName = setting(
        PaletteName.auto,
        "auto (19 classes: cityscapes, 11: camvid, else generic), cityscapes, camvid, generic",
    )
    alpha: float = setting(0.5, "opacity of the class colours in the overlay", low=0, high=1)
    mean: list[float] | None = setting(
        None,
        "normalisation mean per channel (null: the checkpoint's record, else ImageNet's)",
        finite=True,
        length=3,
    )
    std: list[float] | None = setting(
        None,
        "normalisation std per channel (null: the checkpoint's record, else ImageNet's)",
        low=0,
        low_open=True,
        length=3,
    )
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    allow_gaps: bool = setting(False, "accept an architecture that breaks the no-gap rule")


# ---- deployment ----------------------------------------------------------------------------------
class DeployFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


class DeployQuantize(str, Enum):
    none = "none"
    int8 = "int8"  # onnxruntime's static quantization (format=onnx), calibrated on calibration=


@dataclass
class DeployConfig:
    """dilnas-deploy: the deploy-mode network (BatchNorm folded) as an ONNX or TorchScript file, checked."""

    arch: str | None = setting(
        None, "architecture: a shipped name or a .json path (null: the one a retraining checkpoint records)"
    )
    checkpoint: str | None = setting(
        None, "weights: a dilnas retraining or search checkpoint, or a released RegSeg one (null: random)"
    )
    format: DeployFormat = setting(DeployFormat.onnx, "onnx or torchscript")
    out: str = setting(doc="the file to write (.onnx for onnx, .pt for torchscript)")
    input_size: list[int] = setting(
        doc="[HEIGHT, WIDTH] of the check input (the file takes any size; an int8 file, this size only)",
        factory=lambda: [512, 1024],
        low=1,
        length=2,
    )
    seed: int = setting(0, "seed of the check input (and of the weights without a checkpoint)", low=0)
    allow_gaps: bool = setting(False, "accept an architecture that breaks the no-gap rule")
    quantize: DeployQuantize = setting(
        DeployQuantize.none,
        "none or int8 (format=onnx: onnxruntime static quantization, calibrated on images)",
    )
    calibration: str | None = setting(
        None, "quantize=int8: training images (a folder or a glob) that calibrate and check the int8 model"
    )
    calibration_images: int = setting(
        16, "quantize=int8: how many of them calibrate (the first, sorted)", low=1
    )
    check_images: int = setting(
        4, "quantize=int8: the next images, which check the labels (0: the calibration images)", low=0
    )
    min_agreement: float = setting(
        0.95, "quantize=int8: least share of pixels labelled as the float network labels them", low=0, high=1
    )


# ---- plots ---------------------------------------------------------------------------------------
class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@dataclass
class PlotConfig:
    """dilnas-plot: the evolution of the dilation-rate probabilities of a search run or a sweep."""

    run_dir: str = setting(doc="a search run directory (holds arch_history.jsonl) or a sweep directory")
    out: str | None = setting(
        None,
        "a single run: the image file, whose suffix (.png, .svg, .pdf) picks the format, or a folder "
        "(null: <run>/arch_evolution.<format>)",
    )
    dpi: int = setting(120, "resolution of png images", low=1, high=1000)
    format: PlotFormat = setting(PlotFormat.png, "png, svg or pdf, unless out names a file")


# ---- sweep report --------------------------------------------------------------------------------
@dataclass
class ReportConfig:
    """dilnas-report: summarise a sweep of dilnas-search runs and write a consensus architecture."""

    sweep_dir: str = setting(doc="a dilnas-search multirun directory (its jobs hold arch.json)")
    ground_truth: str | None = setting(
        None, "a dilnas-grid ground_truth.csv: rank every job's pick against it"
    )


# ---- ground truth --------------------------------------------------------------------------------
class GridStage(str, Enum):
    all = "all"  # write the architectures, retrain them, collect the table
    write = "write"  # only write the architectures and print the multirun command
    collect = "collect"  # only collect the finished runs into the table


@dataclass
class GridConfig:
    """dilnas-grid: retrain every gapless architecture of a space (or a uniform sample) over seeds."""

    space: str = setting("synthetic_tiny", "search space: a shipped name or a .yaml path")
    out: str = setting(doc="grid directory: archs/, runs/, grid.json, ground_truth.csv")
    sample: int | None = setting(None, "draw K architectures uniformly (null: every gapless one)", low=1)
    sample_seed: int = setting(0, "seed of the draw", low=0)
    include: list[str] = setting(doc="arch.json files to add (e.g. search picks)", factory=list)
    seeds: list[int] = setting(doc="retraining seeds", factory=lambda: [0, 1, 2], low=0)
    retrain: list[str] = setting(doc="extra dilnas-retrain overrides (recipe, launcher)", factory=list)
    stage: GridStage = setting(GridStage.all, "all, write (archs and the command) or collect (the table)")


# ---- ranking -------------------------------------------------------------------------------------
class RankSplit(str, Enum):
    heldout = "heldout"  # the run's held-out split: what the search's selection scores on
    eval = "eval"  # the data's evaluation split, which neither weights nor logits saw (a diagnostic only)


@dataclass
class RankConfig:
    """dilnas-rank: how well a search run's supernet orders the architectures of a ground-truth table."""

    run_dir: str = setting(doc="a dilnas-search run directory (its supernet scores the architectures)")
    ground_truth: str = setting(doc="a dilnas-grid ground_truth.csv of the run's search space")
    checkpoint: str | None = setting(None, "the supernet checkpoint (null: <run_dir>/checkpoints/last.pt)")
    out: str | None = setting(None, "the report (null: <run_dir>/rank.json)")
    top: int = setting(5, "how many of the best architectures the overlap compares", low=1)
    bn_batches: int | None = setting(
        None,
        "batches that re-estimate BatchNorm per architecture (null: the run's search.gap_bn_batches)",
        low=0,
    )
    split: RankSplit = setting(
        RankSplit.heldout,
        "what the architectures are scored on: heldout (the selection's split) or eval (the data's evaluation "
        "split: is the held-out sample what limits the ranking?)",
    )
    bootstrap: int = setting(1000, "bootstrap resamples of the table's seeds for the intervals", low=1)
    seed: int = setting(0, "seed of the bootstrap", low=0)
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    threads: int | None = setting(None, "torch CPU threads (null: torch's default)", low=1)
