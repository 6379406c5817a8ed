"""Dataclass schemas of the training and search settings (``dilnas.spec.tool_options``: the other commands').
No Hydra here: the commands register them (``dilnas.spec.schemas.SCHEMAS``) in Hydra's ConfigStore when they
start (``dilnas.cli.register_schemas``).

Compose rejects unknown keys and wrong types against these; ``dilnas.cli.typed_config`` then turns the
composed config into the dataclass, so library functions never see a DictConfig. Every setting is declared
with ``setting(default, doc, ...)``: its one-line documentation (shown by ``--help``) and its allowed range
(checked by ``typed_config``) live beside its default, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dilnas.spec.settings import setting


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class AmpDtype(str, Enum):
    """What ``trainer.amp=true`` computes in: ``auto`` is float16 on CUDA and full precision on a CPU."""

    auto = "auto"
    float16 = "float16"
    bfloat16 = "bfloat16"


# ---- retraining ----------------------------------------------------------------------------------
class DataName(str, Enum):
    synthetic = "synthetic"
    cityscapes = "cityscapes"
    camvid = "camvid"
    folder = "folder"  # your own data: images/, labels/ and classes.yaml under data.root


class Augment(str, Enum):
    """Extra training augmentation after resize, crop and flip (``data.augment``)."""

    none = "none"
    randaug_reduced = "randaug_reduced"  # RandAugment: 2 of 7 ops at magnitude 0.2 (RegSeg, Cityscapes)


class CropPadding(str, Enum):
    """Where a training sample smaller than the crop is padded (``data.crop_padding``)."""

    bottom_right = "bottom_right"  # black at the bottom and right, before the crop
    official = (
        "official"  # the official RegSeg order: crop, augment, then pad at a random place with the mean
    )


class LossName(str, Enum):
    ce = "ce"
    bootstrapped_ce = "bootstrapped_ce"


@dataclass
class DataConfig:
    """A data set and its augmentation. Fields after ``seed`` only apply to ``name=synthetic``."""

    name: DataName = setting(DataName.synthetic, "synthetic, cityscapes, camvid or folder (your own)")
    root: str | None = setting(None, "data set folder (cityscapes, camvid, folder)")
    train_split: str = setting("train", "split the weights train on")
    eval_split: str = setting("val", "split of the val/ numbers")
    scale_range: list[int] | None = setting(
        doc="random short side [MIN, MAX] in pixels", factory=lambda: [400, 1600], low=1, length=2
    )
    crop_size: list[int] | None = setting(
        doc="training crop [HEIGHT, WIDTH]", factory=lambda: [768, 768], low=1, length=2
    )
    flip: bool = setting(True, "random horizontal flips")
    augment: Augment = setting(
        Augment.none, "none or randaug_reduced, after resize, crop and flip (real data)"
    )
    crop_padding: CropPadding = setting(
        CropPadding.bottom_right,
        "bottom_right (black, before the crop) or official (after augmenting, random place, mean colour)",
    )
    class_uniform_pct: float = setting(
        0.0, "share of samples cropped around a class centroid (retraining; 0: off)", low=0, high=1
    )
    eval_short_side: int | None = setting(
        None, "resize for evaluation (null: full resolution, as the paper)", low=1
    )
    mean: list[float] = setting(
        doc="normalisation mean per channel", factory=lambda: [0.485, 0.456, 0.406], finite=True, length=3
    )
    std: list[float] = setting(
        doc="normalisation std per channel",
        factory=lambda: [0.229, 0.224, 0.225],
        low=0,
        low_open=True,
        length=3,
    )
    num_workers: int = setting(2, "data loader worker processes (0: in the main process)", low=0)
    cache: bool = setting(
        False,
        "real data: decode every image and label once, when the data set is built, and keep them in memory "
        "(epochs skip the PNG decoding; 4 bytes a pixel, shared by forked loader workers; refused beyond half "
        "the machine's memory: for small data sets)",
    )
    seed: int = setting(0, "synthetic: which images are drawn", low=0)
    image_size: int = setting(224, "synthetic: square image side in pixels", low=16, high=4096)
    context_distance: int = setting(48, "synthetic: frame half-size, the context the network must see", low=1)
    frames_per_image: int = setting(4, "synthetic: frames per image", low=1)
    train_samples: int = setting(512, "synthetic: training images", low=1)
    val_samples: int = setting(128, "synthetic: validation images", low=1)
    test_samples: int = setting(128, "synthetic: test images", low=1)


@dataclass
class OptimConfig:
    """SGD with linear warm-up then poly decay per iteration (RegSeg)."""

    lr: float = setting(0.05, "peak learning rate of SGD", low=0, low_open=True)
    momentum: float = setting(0.9, "SGD momentum", low=0, high=1, high_open=True)
    weight_decay: float = setting(1e-4, "L2 weight decay (not on BatchNorm parameters)", low=0)
    warmup_steps: int = setting(3000, "linear warm-up iterations (multiplied by the poly factor)", low=0)
    warmup_factor: float = setting(0.1, "warm-up starts at lr * this", low=0, low_open=True, high=1)
    poly_power: float = setting(0.9, "poly decay: lr * (1 - step/total)^power", low=0)


@dataclass
class LossConfig:
    """The training loss."""

    name: LossName = setting(LossName.ce, "ce or bootstrapped_ce")
    bootstrap_threshold: float = setting(
        0.3, "bootstrapped_ce: pixels with loss above -log(this) count", low=0, low_open=True, high=1
    )
    bootstrap_fraction: float = setting(
        0.0625, "bootstrapped_ce: at least this share of pixels (1/16)", low=0, low_open=True, high=1
    )


class EvalSchedule(str, Enum):
    """When retraining evaluates (``trainer.eval_schedule``); it always evaluates at the end too."""

    interval = "interval"  # every trainer.eval_every_epochs epochs
    official = "official"  # the official RegSeg protocol: every 25 epochs and each of the last 30


@dataclass
class TrainerConfig:
    """The training loop: its length, batches, evaluations, checkpoints."""

    epochs: int = setting(1000, "epochs to train (the bound when max_steps is null)", low=1)
    max_steps: int | None = setting(
        None, "iterations to train; when set it bounds the run instead of epochs", low=1
    )
    batch_size: int = setting(8, "training images per step and process", low=1)
    eval_batch_size: int = setting(1, "images per evaluation batch", low=1)
    eval_every_epochs: int = setting(10, "evaluate every N epochs (and at the end)", low=1)
    eval_schedule: EvalSchedule = setting(
        EvalSchedule.interval,
        "interval (every eval_every_epochs) or official (every 25 and the last 30 epochs)",
    )
    log_every_steps: int = setting(20, "print and log every N steps", low=1)
    checkpoint_every_steps: int = setting(
        0, "save last.pt every N steps (0: at the end of every epoch only)", low=0
    )
    amp: bool = setting(True, "mixed precision (autocast), in trainer.amp_dtype")
    amp_dtype: AmpDtype = setting(
        AmpDtype.auto, "auto (float16 on CUDA, off on a CPU), float16 or bfloat16 (CPU too)"
    )
    sync_bn: bool = setting(False, "SyncBatchNorm across DDP processes")


@dataclass
class RetrainConfig:
    """dilnas-retrain: train a fixed architecture, evaluate it, keep checkpoints."""

    arch: str = setting(doc="architecture: a shipped name (exp48_decoder26) or a .json path")
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    seed: int = setting(0, "seed of weights, sampling and augmentation", low=0)
    resume: bool = setting(False, "continue the run in hydra.run.dir from its last checkpoint")
    eval_only: bool = setting(False, "only evaluate a checkpoint on data.eval_split")
    checkpoint: str | None = setting(
        None, "eval_only: the checkpoint (default: <run dir>/checkpoints/best.pt)"
    )
    init: str | None = setting(None, "start from a released RegSeg, dilnas or search checkpoint")
    allow_gaps: bool = setting(False, "accept an architecture that breaks the no-gap rule")


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
    uniform = "uniform"  # the ablation: the supernet with fixed uniform logits, the best of uniform draws


class DeriveRule(str, Enum):
    argmax = "argmax"
    expected = "expected"
    topk = "topk"


@dataclass
class SearchConfig:
    """The bilevel dilation search: weights on the train split, logits on a held-out split of it."""

    space: str = setting("synthetic_tiny", "search space: a shipped name or a .yaml path")
    relaxation: Relaxation = setting(
        Relaxation.softmax, "softmax (every rate, mixed) or gumbel (one sampled rate)"
    )
    shared_kernel: bool = setting(True, "one 3x3 kernel shared by all rates of a branch")
    order: SearchOrder = setting(SearchOrder.first, "first or second (exact unrolled hypergradient)")
    heldout_fraction: float = setting(
        0.5,
        "share of the training split held out for the logits",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    )
    heldout_seed: int = setting(0, "which samples are held out (independent of seed)", low=0)
    warmup_epochs: int = setting(2, "epochs of weights only before the logits move", low=0)
    arch_lr: float = setting(0.05, "Adam learning rate of the logits", low=0, low_open=True)
    arch_betas: list[float] = setting(
        doc="Adam betas of the logits", factory=lambda: [0.5, 0.999], low=0, high=1, high_open=True, length=2
    )
    arch_weight_decay: float = setting(0.0, "weight decay of the logits", low=0)
    temperature_start: float = setting(
        1.0, "softmax temperature at the first logit step", low=0, low_open=True
    )
    temperature_end: float = setting(
        1.0, "temperature at the last (annealed geometrically)", low=0, low_open=True
    )
    entropy_weight: float = setting(0.0, "> 0 pushes the probabilities to commit", low=0)
    unrolled_lr: float | None = setting(
        None, "second order: the virtual step's lr (null: the weights')", low=0, low_open=True
    )
    gap_bn_batches: int = setting(
        8, "gap probe: training batches that re-estimate BatchNorm (0: no probe)", low=0
    )
    rule: DeriveRule = setting(DeriveRule.argmax, "derivation: argmax, expected or topk")
    topk: int = setting(2, "rule=topk: how many of the most probable rates count", low=1)
    select_top: int = setting(
        8,
        "keep the best on held-out data of the N most probable gapless networks (1: the rule's pick)",
        low=1,
    )
    method: SearchMethod = setting(
        SearchMethod.gradient,
        "gradient (the search), random (the baseline) or uniform (weight sharing, fixed uniform logits)",
    )
    random_archs: int = setting(4, "method=random: gapless architectures drawn and trained", low=1)
    random_steps: int | None = setting(
        None,
        "method=random: steps per architecture (null: the gradient search's training compute, 2 x its steps / "
        "random_archs; its held-out selection, 15-20% more on the synthetic spaces, not counted)",
        low=1,
    )


@dataclass
class SearchRunConfig:
    """dilnas-search: search, then write the derived arch.json into the run directory."""

    search: SearchConfig = field(default_factory=SearchConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceChoice = setting(DeviceChoice.auto, "auto (CUDA if available), cpu or cuda")
    seed: int = setting(0, "seed of weights, logits and sampling", low=0)
    resume: bool = setting(False, "continue the run in hydra.run.dir from its last checkpoint")


@dataclass
class ExportConfig:
    """dilnas-export: derive arch.json again from any checkpoint of a search run."""

    run_dir: str = setting(doc="a dilnas-search run directory")
    checkpoint: str | None = setting(None, "the checkpoint (null: <run_dir>/checkpoints/last.pt)")
    rule: DeriveRule | None = setting(None, "argmax, expected or topk (null: the run's own)")
    topk: int | None = setting(None, "rule=topk: how many rates count (null: the run's own)", low=1)
    out: str | None = setting(
        None, "output file (null: <run_dir>/arch_<rule>.json; never the search's arch.json)"
    )
