"""Dataclass schemas of every command's config. No Hydra here: the commands register them (``SCHEMAS``) in
Hydra's ConfigStore when they start (``dilnas.cli.register_schemas``).

Compose rejects unknown keys and wrong types against these; ``dilnas.cli.typed_config`` then turns the
composed config into the dataclass, so library functions never see a DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

MISSING = "???"  # OmegaConf's marker of a value the user must give (omegaconf.MISSING)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class InfoConfig:
    """dilnas-info: parameters, MACs, field of view and per-block no-gap slack of an architecture."""

    arch: str = MISSING
    num_classes: int | None = None
    input_size: list[int] = field(default_factory=lambda: [1024, 2048])
    format: OutputFormat = OutputFormat.table
    allow_gaps: bool = False


@dataclass
class BenchInferConfig:
    """dilnas-bench infer: forward-pass time, eager vs deploy (BN folded, inference mode)."""

    arch: str = MISSING
    num_classes: int | None = None
    input_size: list[int] = field(default_factory=lambda: [1024, 2048])
    batch_size: int = 1
    device: DeviceChoice = DeviceChoice.auto
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    seed: int = 0
    format: OutputFormat = OutputFormat.table
    allow_gaps: bool = False


@dataclass
class BenchSearchConfig:
    """dilnas-bench search: one training step of the supernet (softmax, gumbel) vs the derived fixed network."""

    spaces: list[str] = field(default_factory=lambda: ["synthetic_tiny", "regseg_exp48"])
    crops: list[int] = field(default_factory=lambda: [224, 512])  # one per space
    batch_sizes: list[int] = field(default_factory=lambda: [8, 2])  # one per space
    device: DeviceChoice = DeviceChoice.auto
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    seed: int = 0
    format: OutputFormat = OutputFormat.table


# ---- retraining ----------------------------------------------------------------------------------
class DataName(str, Enum):
    synthetic = "synthetic"
    cityscapes = "cityscapes"
    camvid = "camvid"


class Augment(str, Enum):
    """Extra training augmentation after resize, crop and flip (``data.augment``)."""

    none = "none"
    randaug_reduced = "randaug_reduced"  # RandAugment: 2 of 7 ops at magnitude 0.2 (RegSeg, Cityscapes)


class LossName(str, Enum):
    ce = "ce"
    bootstrapped_ce = "bootstrapped_ce"


@dataclass
class DataConfig:
    """A data set and its augmentation. Fields after ``seed`` only apply to ``name=synthetic``."""

    name: DataName = DataName.synthetic
    root: str | None = None
    train_split: str = "train"
    eval_split: str = "val"
    scale_range: list[int] | None = field(default_factory=lambda: [400, 1600])  # random short side
    crop_size: list[int] | None = field(default_factory=lambda: [768, 768])  # [height, width]
    flip: bool = True
    augment: Augment = Augment.none  # after resize, crop and flip; real data sets only
    # share of each epoch's samples cropped around a class centroid, in [0, 1] (0: off); dilnas-retrain only
    class_uniform_pct: float = 0.0
    eval_short_side: int | None = None  # resize for evaluation (None: full resolution, as the paper)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    num_workers: int = 2
    seed: int = 0  # synthetic: which images are drawn
    image_size: int = 224
    context_distance: int = 48
    frames_per_image: int = 4
    train_samples: int = 512
    val_samples: int = 128
    test_samples: int = 128


@dataclass
class OptimConfig:
    """SGD with linear warm-up then poly decay per iteration (RegSeg)."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4  # not on BatchNorm parameters
    warmup_steps: int = 3000
    warmup_factor: float = 0.1
    poly_power: float = 0.9


@dataclass
class LossConfig:
    name: LossName = LossName.ce
    bootstrap_threshold: float = 0.3
    bootstrap_fraction: float = 0.0625  # K = batch * H * W / 16


@dataclass
class TrainerConfig:
    epochs: int = 1000
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8
    eval_batch_size: int = 1
    eval_every_epochs: int = 10
    log_every_steps: int = 20
    checkpoint_every_steps: int = 0  # 0: at the end of every epoch only
    amp: bool = True  # only on CUDA
    sync_bn: bool = False  # DDP only


@dataclass
class RetrainConfig:
    """dilnas-retrain: train a fixed architecture, evaluate it, keep checkpoints."""

    arch: str = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceChoice = DeviceChoice.auto
    seed: int = 0
    resume: bool = False
    eval_only: bool = False
    checkpoint: str | None = None  # eval_only: which checkpoint (default: <run dir>/checkpoints/best.pt)
    init: str | None = None  # released RegSeg checkpoint or a dilnas checkpoint to start from
    allow_gaps: bool = False


# ---- search --------------------------------------------------------------------------------------
class Relaxation(str, Enum):
    softmax = "softmax"
    gumbel = "gumbel"


class SearchOrder(str, Enum):
    first = "first"
    second = "second"


class SearchMethod(str, Enum):
    gradient = "gradient"  # the bilevel gradient search over the supernet
    random = "random"  # the baseline: random gapless architectures trained briefly, the best on held-out data


class DeriveRule(str, Enum):
    argmax = "argmax"
    expected = "expected"
    topk = "topk"


@dataclass
class SearchConfig:
    """The bilevel dilation search: weights on the train split, logits on a held-out split of it."""

    space: str = "synthetic_tiny"  # a name in search_spaces/ or a path to a .yaml
    relaxation: Relaxation = Relaxation.softmax
    shared_kernel: bool = True
    order: SearchOrder = SearchOrder.first
    heldout_fraction: float = 0.5  # of the training split, for the architecture step
    heldout_seed: int = (
        0  # which samples are held out: fixed apart from ``seed``, so seeds vary the search only
    )
    warmup_epochs: int = 2  # weights only, before the logits move
    arch_lr: float = 0.05
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 0.0
    temperature_start: float = 1.0
    temperature_end: float = 1.0  # annealed geometrically over the architecture steps
    entropy_weight: float = 0.0  # > 0 pushes the probabilities to commit
    unrolled_lr: float | None = None  # second order: the virtual step's lr (default: the weights' lr)
    gap_bn_batches: int = (
        8  # gap probe: training batches that re-estimate the derived network's BN statistics
    )
    rule: DeriveRule = DeriveRule.argmax
    topk: int = 2
    method: SearchMethod = SearchMethod.gradient
    random_archs: int = 4  # method=random: how many gapless architectures are drawn and trained
    # method=random: training steps per architecture; null: the same compute as a gradient search of this
    # budget, counted as 2 fixed-network steps per search step (a weight step and an architecture step)
    random_steps: int | None = None


@dataclass
class SearchRunConfig:
    """dilnas-search: search, then write the derived arch.json into the run directory."""

    search: SearchConfig = field(default_factory=SearchConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceChoice = DeviceChoice.auto
    seed: int = 0
    resume: bool = False


@dataclass
class ExportConfig:
    """dilnas-export: derive arch.json again from any checkpoint of a search run."""

    run_dir: str = MISSING
    checkpoint: str | None = None  # default: <run_dir>/checkpoints/last.pt
    rule: DeriveRule | None = None  # default: the run's own rule
    topk: int | None = None
    out: str | None = None  # default: <run_dir>/arch_<rule>.json (the search's arch.json is never rewritten)


# ---- plots ---------------------------------------------------------------------------------------
class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@dataclass
class PlotConfig:
    """dilnas-plot: the evolution of the dilation-rate probabilities of a search run or a sweep."""

    run_dir: str = (
        MISSING  # a search run directory (holds arch_history.jsonl) or a sweep directory above runs
    )
    out: str | None = (
        None  # a single run only: where to write the image (default <run>/arch_evolution.<format>)
    )
    dpi: int = 120
    format: PlotFormat = PlotFormat.png


# ---- sweep report --------------------------------------------------------------------------------
@dataclass
class ReportConfig:
    """dilnas-report: summarise a sweep of dilnas-search runs and write a consensus architecture."""

    sweep_dir: str = MISSING  # a Hydra multirun directory (its jobs hold arch.json)
    ground_truth: str | None = (
        None  # a dilnas-grid table (ground_truth.csv): rank every run's pick against it
    )


# ---- ground truth --------------------------------------------------------------------------------
class GridStage(str, Enum):
    all = "all"  # write the architectures, retrain them, collect the table
    write = "write"  # only write the architectures and print the multirun command
    collect = "collect"  # only collect the finished runs into the table


@dataclass
class GridConfig:
    """dilnas-grid: retrain every gapless architecture of a space (or a uniform sample) over seeds."""

    space: str = "synthetic_tiny"  # a name in search_spaces/ or a path to a .yaml
    out: str = MISSING  # grid directory: archs/, runs/, grid.json, ground_truth.csv
    sample: int | None = None  # K architectures drawn uniformly; null: every gapless one
    sample_seed: int = 0
    include: list[str] = field(default_factory=list)  # arch.json files to add (e.g. search picks)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # retraining seeds
    retrain: list[str] = field(default_factory=list)  # extra dilnas-retrain overrides (recipe, launcher)
    stage: GridStage = GridStage.all


# (name, group, schema) for Hydra's ConfigStore: primary configs name their schema in their defaults list
# (``- search_run_schema``), group options name their group's (``- search_schema``).
SCHEMAS: tuple[tuple[str, str | None, type], ...] = (
    ("info_schema", None, InfoConfig),
    ("bench_infer_schema", None, BenchInferConfig),
    ("bench_search_schema", None, BenchSearchConfig),
    ("retrain_schema", None, RetrainConfig),
    ("search_run_schema", None, SearchRunConfig),
    ("export_schema", None, ExportConfig),
    ("plot_schema", None, PlotConfig),
    ("report_schema", None, ReportConfig),
    ("grid_schema", None, GridConfig),
    ("data_schema", "data", DataConfig),
    ("optim_schema", "optim", OptimConfig),
    ("trainer_schema", "trainer", TrainerConfig),
    ("search_schema", "search", SearchConfig),
)
