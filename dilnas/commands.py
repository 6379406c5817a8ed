"""``dilnas``: the list of dilnas' commands, each one line (``dilnas --version`` too). Every command has its own
``--help``."""

from __future__ import annotations

import sys

from dilnas import __version__

COMMANDS = (
    ("dilnas-search", "search the dilation rates of a space (bilevel, held-out selection); writes arch.json"),
    ("dilnas-export", "derive an architecture again from a search's checkpoint, with any rule"),
    ("dilnas-retrain", "train a fixed architecture to a measured mIoU (or evaluate a checkpoint)"),
    ("dilnas-grid", "the ground truth of a space: its architectures retrained over seeds"),
    ("dilnas-rank", "how well a search's supernet orders the architectures of a ground truth"),
    ("dilnas-report", "summarise a sweep of searches, against a ground truth if given"),
    ("dilnas-plot", "figures of the rate probabilities over epochs"),
    ("dilnas-info", "parameters, MACs, field of view and no-gap slack of an architecture"),
    ("dilnas-predict", "masks and overlays of images with a trained network"),
    ("dilnas-deploy", "the deploy-mode network as ONNX or TorchScript, checked against eager"),
    ("dilnas-bench", "speed tables, rows timed in alternating rounds (infer, search)"),
)


def main() -> None:
    if "--version" in sys.argv[1:]:
        print(f"dilnas {__version__}")
        return
    width = max(len(name) for name, _ in COMMANDS)
    lines = [f"dilnas {__version__}: dilation-rate search for real-time segmentation (RegSeg)", ""]
    lines += [f"  {name:<{width}}  {about}" for name, about in COMMANDS]
    lines += ["", "Each command: --help for its settings; python -m dilnas.<verb> runs it too."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
