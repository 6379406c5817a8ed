"""exp48 through onnxruntime on every execution provider this machine has, float and INT8 (and float16 where
TensorRT offers it), timed and compared with the paper's speed. Part of ``make gpu-check``; runs on a CPU too.

    python tools/onnx_providers.py [--size 1024 2048] [--repeats 10] [--out DIR]

Rows (each only where its provider is installed; a skipped one says why):
  CPUExecutionProvider fp32 and int8;
  CUDAExecutionProvider fp32 and int8 (the QDQ model; onnxruntime-gpu);
  TensorrtExecutionProvider fp16 (``trt_fp16_enable``) and int8 (the QDQ model's own scales).
The INT8 model is calibrated on the random input (``dilnas.models.quantize``): its speed, not its accuracy.
Every row keeps its input and output on its device (I/O binding: no host copies in the time), and a provider
that onnxruntime could not load (it then falls back to the CPU) is a skipped row, never a mislabelled one.
RegSeg's paper and code report exp48 at 30 to 37 FPS at 1024x2048 on a T4; the table puts each row's FPS
beside that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from dilnas.models.deploy import deploy_model
from dilnas.models.deploy_formats import INPUT_NAME, OUTPUT_NAME, missing_onnx_packages, onnx_bytes
from dilnas.models.initialize import load_model
from dilnas.models.quantize import quantize_int8
from dilnas.utils.files import atomic_write_json
from dilnas.utils.tables import format_table

PAPER_FPS = "30-37 (T4, paper)"
ROWS = (  # (provider, precision, provider options)
    ("CPUExecutionProvider", "fp32", {}),
    ("CPUExecutionProvider", "int8", {}),
    ("CUDAExecutionProvider", "fp32", {}),
    ("CUDAExecutionProvider", "int8", {}),
    ("TensorrtExecutionProvider", "fp16", {"trt_fp16_enable": True}),
    ("TensorrtExecutionProvider", "int8", {"trt_int8_enable": True, "trt_fp16_enable": True}),
)


def time_session(session, images, repeats: int, device: str) -> list[float]:
    """Seconds per run, the input and the output kept on ``device`` (onnxruntime's I/O binding), so that a GPU
    row times the network and not the copies of a 1024x2048 input and its logits."""
    import onnxruntime

    binding = session.io_binding()
    binding.bind_ortvalue_input(INPUT_NAME, onnxruntime.OrtValue.ortvalue_from_numpy(images, device, 0))
    binding.bind_output(OUTPUT_NAME, device)
    for _ in range(2):
        session.run_with_iobinding(binding)
    times = []
    for _ in range(repeats):
        binding.synchronize_inputs()
        start = time.perf_counter()
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="folder for providers.json")
    args = parser.parse_args()
    if missing_onnx_packages():
        print(f"onnx providers: skipped, {', '.join(missing_onnx_packages())} not installed")
        return 0
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    torch.manual_seed(0)
    deployed = deploy_model(load_model("exp48_decoder26", None))
    images = torch.randn(1, 3, *args.size)
    results, table = [], []
    with tempfile.TemporaryDirectory(prefix="dilnas-providers-") as folder:
        fp32_path, int8_path = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        fp32_path.write_bytes(onnx_bytes(deployed, images, dynamic=False))
        int8_path.write_bytes(quantize_int8(fp32_path.read_bytes(), [images]))
        for provider, precision, options in ROWS:
            row = {"provider": provider, "precision": precision}
            if provider not in available:
                row["skipped"] = f"{provider} not in this onnxruntime ({onnxruntime.__version__})"
            else:
                path = int8_path if precision == "int8" else fp32_path
                try:
                    session = onnxruntime.InferenceSession(str(path), providers=[(provider, options)])
                    used = session.get_providers()[0]
                    if used != provider:  # it could not load and onnxruntime fell back: not this row
                        row["skipped"] = f"{provider} did not load; onnxruntime fell back to {used}"
                    else:
                        device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
                        times = time_session(session, images.numpy(), args.repeats, device)
                        row["median_ms"] = 1000 * statistics.median(times)
                        row["fps"] = 1000 / row["median_ms"]
                except Exception as error:
                    row["skipped"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            results.append(row)
            table.append(
                [
                    provider,
                    precision,
                    f"{row['median_ms']:.1f}" if "median_ms" in row else "-",
                    f"{row['fps']:.1f}" if "fps" in row else "-",
                    PAPER_FPS,
                    row.get("skipped", ""),
                ]
            )
    size = "x".join(map(str, args.size))
    print(
        f"exp48_decoder26 at {size} through onnxruntime {onnxruntime.__version__} ({args.repeats} runs each)"
    )
    print(format_table(["provider", "precision", "median ms", "FPS", "paper FPS", "note"], table))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / "providers.json", {"size": args.size, "rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
