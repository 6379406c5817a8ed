"""INT8 on real images: CamVid val mIoU of retrained camvid_lite networks, eager, as float ONNX and as INT8 ONNX
(``dilnas-deploy format=onnx quantize=int8``), each run through onnxruntime on the CPU.

    python experiments/camvid/int8.py OUT.csv RUN_DIR [RUN_DIR ...] [--data ../shared/data/camvid] [--short-side N]

Each RUN_DIR is a dilnas-retrain run directory (its ``config.yaml`` gives the evaluation split, its
``checkpoints/last.pt`` the final weights); the evaluation is at native resolution (360x480), as the camvid_lite
protocol's, or at ``--short-side``. The INT8 model is calibrated on the first ``--calibration`` images of
CamVid ``train`` at the evaluation size. Columns: run, arch, the three mIoUs, and the
share of val pixels the INT8 model labels as the float network does. The table is in
``experiments/camvid/README.md`` ("INT8").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from dilnas.analysis.predictions import calibration_images, input_normalisation
from dilnas.analysis.run_evaluation import evaluation_set, final_network
from dilnas.models.deploy_formats import onnx_forward, onnx_session, write_deployable
from dilnas.models.quantize import label_agreement, write_int8_onnx
from dilnas.spec.tool_options import DeployFormat
from dilnas.train.trainer import evaluate
from dilnas.utils.files import atomic_write_csv

COLUMNS = ("run", "arch", "eager_miou", "onnx_fp32_miou", "onnx_int8_miou", "int8_label_agreement")


class OnnxNetwork(nn.Module):
    """An onnxruntime session as a module, so that the training code's evaluation runs it."""

    def __init__(self, path: Path):
        super().__init__()
        self.session = onnx_session(path, threads=torch.get_num_threads())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return onnx_forward(self.session, images)


def measure(run: Path, data_root: Path, calibration: int, short_side: int | None) -> dict[str, object]:
    val = evaluation_set(run, data_root, short_side)
    loader = DataLoader(val, batch_size=1)
    model = final_network(run)
    size = tuple(val[0][0].shape[-2:])
    mean, std, _ = input_normalisation(model.normalisation, None, None)
    images = calibration_images(data_root / "train", calibration, mean, std, (size[0], size[1]))
    classes, cpu = len(val.class_names), torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="dilnas-int8-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        write_deployable(model, DeployFormat.onnx, fp32, size)
        write_int8_onnx(model, int8, images, 0.0)
        networks = {"eager": model, "fp32": OnnxNetwork(fp32), "int8": OnnxNetwork(int8)}
        mious = {name: evaluate(net, loader, classes, cpu).miou() for name, net in networks.items()}
        agreement = label_agreement(networks["fp32"], networks["int8"], [image[None] for image, _ in val])
    return {
        "run": str(run),
        "arch": model.spec.name,
        "eager_miou": round(mious["eager"], 2),
        "onnx_fp32_miou": round(mious["fp32"], 2),
        "onnx_int8_miou": round(mious["int8"], 2),
        "int8_label_agreement": round(agreement, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/camvid"))
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument(
        "--short-side", type=int, default=None, help="evaluation short side (default: native)"
    )
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.data, args.calibration, args.short_side))
        print(rows[-1], flush=True)
    atomic_write_csv(args.out, COLUMNS, rows)


if __name__ == "__main__":
    main()
