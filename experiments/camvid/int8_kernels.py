"""Where the INT8 model's time goes: onnxruntime's kernel time per kind of convolution, float against INT8, for a
RegSeg architecture at one input size (random weights: kernel time does not depend on the values).

    python experiments/camvid/int8_kernels.py [--arch exp48_decoder26] [--size 1024 2048] [--runs 3] [--threads 2]
        [--json OUT.json]

It exports the deploy-mode network as float ONNX and as ``dilnas-deploy quantize=int8`` does, runs each in
onnxruntime with profiling on, and prints the kernel milliseconds per run of each convolution kind (the stem and
other dense 3x3, the 1x1 projections, the grouped dilated 3x3, the squeeze-excitation's 1x1 on pooled maps) and
of everything else (layout conversions, resizes, pools, element-wise), with the INT8 speed-up per row
(``--json``: the same numbers, unrounded, as a file). The reading is in ``experiments/camvid/README.md`` ("INT8").
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import torch

from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import onnx_bytes
from dilnas.models.quantize import int8_network, quantize_int8
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import load_arch
from dilnas.utils.files import atomic_write_text, dumps_json
from dilnas.utils.tables import format_table

CONV_OPS = ("Conv", "QLinearConv")  # float (NCHW or onnxruntime's NCHWc) and integer


def conv_kinds(optimized: Path) -> dict[str, str]:
    """The kind of every convolution of an onnxruntime-optimized model (float NCHWc or integer NHWC kernels),
    by node name: from its kernel size and group count."""
    import onnx

    kinds = {}
    for node in onnx.load(str(optimized)).graph.node:
        if node.op_type not in CONV_OPS:
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kernel, group = attributes.get("kernel_shape", [1, 1]), attributes.get("group", 1)
        if kernel[0] == 1:
            kinds[node.name] = "1x1"
        else:
            size = f"{kernel[0]}x{kernel[1]}"
            kinds[node.name] = f"grouped {size}" if group > 1 else f"dense {size} (stem, decoder)"
    return kinds


def is_pooled(args: dict) -> bool:
    """Whether a convolution's output is one pixel (the squeeze-excitation's), in NCHW, NCHWc or NHWC."""
    output = next(iter(args["output_type_shape"][0].values()))
    return output[1 if args["op_name"] == "QLinearConv" else 2] == 1


def kernel_ms(path: Path, image: torch.Tensor, runs: int, threads: int) -> tuple[dict[str, float], float]:
    """(kernel milliseconds per run by row, wall milliseconds per run) of the ONNX model at ``path``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # quiet: ORT warns that the optimized copy suits this machine only
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    optimized = path.with_suffix(".optimized.onnx")
    options.optimized_model_filepath = str(optimized)
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image.numpy()}
    session.run(None, feed)  # warm-up, profiled too: dropped below
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, feed)
    wall = (time.perf_counter() - start) / runs * 1000
    kinds = conv_kinds(optimized)
    events = json.loads(Path(session.end_profiling()).read_text())
    timed = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][-runs:]
    rows: dict[str, float] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        if not any(run["ts"] <= event["ts"] <= run["ts"] + run["dur"] for run in timed):
            continue
        op, node = event["args"]["op_name"], event["name"].removesuffix("_kernel_time")
        if op in CONV_OPS:
            row = "conv: squeeze-excitation 1x1" if is_pooled(event["args"]) else f"conv: {kinds[node]}"
        else:
            row = op.removeprefix("QLinear")
        rows[row] += event["dur"] / 1000 / runs
    return dict(rows), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="exp48_decoder26")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    deployed = deploy_model(RegSeg(load_arch(args.arch)).eval())
    image = torch.randn(1, 3, *args.size)
    with tempfile.TemporaryDirectory(prefix="dilnas-int8-kernels-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        fp32.write_bytes(onnx_bytes(deployed, image, dynamic=False))
        int8.write_bytes(quantize_int8(onnx_bytes(int8_network(deployed), image, dynamic=False), [image]))
        (float_rows, float_wall), (int_rows, int_wall) = (
            kernel_ms(path, image, args.runs, args.threads) for path in (fp32, int8)
        )
    names = sorted(set(float_rows) | set(int_rows), key=lambda name: -float_rows.get(name, 0.0))
    table = []
    for name in [
        *sorted(n for n in names if n.startswith("conv:")),
        *(n for n in names if not n.startswith("conv:")),
    ]:
        a, b = float_rows.get(name, 0.0), int_rows.get(name, 0.0)
        table.append([name, f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x" if a and b else ""])
    total_a, total_b = sum(float_rows.values()), sum(int_rows.values())
    table.append(["all kernels", f"{total_a:.1f}", f"{total_b:.1f}", f"{total_a / total_b:.2f}x"])
    table.append(
        ["wall time per run", f"{float_wall:.1f}", f"{int_wall:.1f}", f"{float_wall / int_wall:.2f}x"]
    )
    print(f"{args.arch} at {args.size[0]}x{args.size[1]}, {args.threads} threads, {args.runs} runs")
    print(format_table(["kernel (ms per run)", "float", "int8", "int8 speed-up"], table))
    if args.json:
        kernels = {"float": float_rows, "int8": int_rows}
        atomic_write_text(
            args.json, dumps_json({"kernel_ms": kernels, "wall_ms": {"float": float_wall, "int8": int_wall}})
        )


if __name__ == "__main__":
    main()
