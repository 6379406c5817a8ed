"""``dilnas-bench MODE ...``: performance tables, every ratio measured side by side in one run.

Modes: ``infer`` (forward pass of a fixed RegSeg, eager vs deploy, and onnxruntime), ``search`` (a training step of the
supernet against the derived network of the same shape) and ``data`` (a training batch read decoding every image
against one read from memory, ``data.cache``, beside a training step on it).
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable

import torch
from omegaconf import DictConfig

from dilnas import __version__
from dilnas.analysis.data_bench import bench_data, format_data_rows
from dilnas.analysis.data_bench import rows_as_dicts as data_rows_as_dicts
from dilnas.analysis.inference_bench import bench_inference, format_inference, rows_as_dicts
from dilnas.analysis.search_bench import bench_search_step, format_search_rows
from dilnas.analysis.search_bench import rows_as_dicts as search_rows_as_dicts
from dilnas.analysis.timing import machine_load
from dilnas.cli import fail, hydra_command, typed_config
from dilnas.models.deploy_formats import INSTALL_HINT, missing_onnx_packages
from dilnas.models.memory import check_memory
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.spec.options import OutputFormat
from dilnas.spec.space import load_space
from dilnas.spec.tool_options import BenchDataConfig, BenchInferConfig, BenchSearchConfig
from dilnas.train.distributed import resolve_device
from dilnas.utils.errors import UserError

PROGRAM = "dilnas-bench"


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def describe_load(load: dict) -> str:
    """The rounds and the machine's load around them, under a table."""
    before, after = load["before"], load["after"]
    level = (
        f"{before:.2f} before, {after:.2f} after" if before is not None and after is not None else "unknown"
    )
    return (
        f"{load['rounds']} rounds in rotating order (ratios: median of the per-round ratios, spread min-max); "
        f"machine load (1-minute average): {level}"
    )


def print_report(output: OutputFormat, report: dict, table: str) -> None:
    """A mode's result: ``report`` as JSON, or ``table`` and the line on the rounds and the machine's load."""
    if output is OutputFormat.json:
        print(json.dumps(report, indent=2))
    else:
        print(table)
        print(describe_load(report["load"]))


def run_infer(cfg: DictConfig) -> None:
    config = typed_config(cfg, BenchInferConfig)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    spec = load_arch(config.arch, allow_gaps=config.allow_gaps)
    if config.num_classes is not None:
        spec = spec.with_num_classes(config.num_classes)
    shape = (config.batch_size, spec.stem.in_channels, *config.input_size)
    check_memory(lambda: RegSeg(spec), shape, device, f"timing {spec.name}")
    print(
        f"timing {spec.name} at {config.batch_size}x3x{config.input_size[0]}x{config.input_size[1]} "
        f"on {machine_description(device)} ...",
        file=sys.stderr,
    )
    onnxruntime = config.onnxruntime
    missing = missing_onnx_packages()
    if onnxruntime and missing:
        print(
            f"onnxruntime row skipped: {', '.join(missing)} not installed ({INSTALL_HINT})", file=sys.stderr
        )
        onnxruntime = False
    load_before = machine_load()
    rows = bench_inference(
        spec,
        config.input_size,
        device,
        config.batch_size,
        config.warmup,
        config.repeats,
        config.seed,
        onnxruntime=onnxruntime,
    )
    report = {
        "arch": spec.name,
        "input_size": config.input_size,
        "batch_size": config.batch_size,
        "machine": machine_description(device),
        "load": {"before": load_before, "after": machine_load(), "rounds": config.repeats},
        "rows": rows_as_dicts(rows),
    }
    print_report(config.format, report, format_inference(rows))


def run_search(cfg: DictConfig) -> None:
    config = typed_config(cfg, BenchSearchConfig)
    if not len(config.spaces) == len(config.crops) == len(config.batch_sizes):
        raise UserError(
            f"spaces, crops and batch_sizes need one entry per space; got {len(config.spaces)}, "
            f"{len(config.crops)} and {len(config.batch_sizes)}"
        )
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    print(f"timing one training step on {machine_description(device)} ...", file=sys.stderr)
    load_before = machine_load()
    rows = []
    for name, crop, batch_size in zip(config.spaces, config.crops, config.batch_sizes, strict=True):
        space = load_space(name)
        rows += bench_search_step(space, crop, batch_size, device, config.warmup, config.repeats, config.seed)
    memory_label = "peak MB" if device.type == "cuda" else "saved MB"
    report = {
        "machine": machine_description(device),
        "memory": memory_label,
        "load": {"before": load_before, "after": machine_load(), "rounds": config.repeats},
        "rows": search_rows_as_dicts(rows),
    }
    print_report(config.format, report, format_search_rows(rows, memory_label))


def run_data(cfg: DictConfig) -> None:
    config = typed_config(cfg, BenchDataConfig)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    spec = load_arch(config.arch)
    machine = machine_description(torch.device("cpu"))

    def announce(what: str) -> None:
        print(f"timing {what} on {machine} ...", file=sys.stderr)

    load_before = machine_load()
    rows = bench_data(
        config.data, spec, config.batch_size, config.warmup, config.repeats, config.seed, announce
    )
    report = {
        "data": config.data.name.value,
        "arch": spec.name,
        "batch_size": config.batch_size,
        "machine": machine,
        "load": {"before": load_before, "after": machine_load(), "rounds": config.repeats},
        "rows": data_rows_as_dicts(rows),
    }
    print_report(config.format, report, format_data_rows(rows))


MODES: dict[str, tuple[str, Callable[[DictConfig], None], tuple[str, ...]]] = {
    "infer": (
        "bench_infer",
        run_infer,
        (
            "dilnas-bench infer arch=exp48_decoder26 input_size=[1024,2048]",
            "dilnas-bench infer arch=exp48_decoder26 device=cuda batch_size=4 format=json",
        ),
    ),
    "search": (
        "bench_search",
        run_search,
        ("dilnas-bench search", "dilnas-bench search spaces=[synthetic_tiny] crops=[224] batch_sizes=[8]"),
    ),
    "data": (
        "bench_data",
        run_data,
        (
            "dilnas-bench data data.root=../shared/data/camvid data.scale_range=[160,320] data.crop_size=[192,256]",
            "dilnas-bench data data=cityscapes data.root=DIR batch_size=2 format=json",
        ),
    ),
}
USAGE = (
    f"usage: {PROGRAM} {{{','.join(MODES)}}} [key=value ...]   ({PROGRAM} MODE --help: the mode's settings)"
)
ABOUT = {
    "infer": "forward-pass time of an architecture, eager vs deploy (BatchNorm folded) vs onnxruntime",
    "search": "one training step of the supernet (softmax, gumbel) vs the derived fixed network",
    "data": "a training batch read decoding every image vs from memory (data.cache), beside a train step",
}


def main() -> None:
    if sys.argv[1:2] == ["--version"]:
        print(f"{PROGRAM} (dilnas) {__version__}")
        sys.exit(0)
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        text = "\n".join([USAGE, "", *(f"  {mode:<7} {about}" for mode, about in ABOUT.items())])
        print(text, file=sys.stdout if len(sys.argv) >= 2 else sys.stderr)
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    mode = sys.argv[1]
    if mode not in MODES:
        fail(PROGRAM, UserError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}. {USAGE}"))
    del sys.argv[1]
    config_name, task, examples = MODES[mode]
    hydra_command(PROGRAM, config_name, task, examples)()


if __name__ == "__main__":
    main()
