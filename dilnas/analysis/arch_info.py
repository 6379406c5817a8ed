"""What ``dilnas-info`` reports about an architecture: size, cost, field of view, no-gap slack per block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dilnas.analysis.complexity import count_macs, count_parameters
from dilnas.models.regseg import RegSeg
from dilnas.spec.arch import ArchSpec
from dilnas.utils.tables import format_table


def arch_info(spec: ArchSpec, input_size: Sequence[int]) -> dict[str, Any]:
    """A JSON-ready summary. ``slack`` is the bound minus the block's largest rate (negative: a gap)."""
    with torch.device("meta"):
        model = RegSeg(spec)
    height, width = input_size
    blocks = []
    for index, (block, (before, after), output_stride) in enumerate(
        zip(spec.blocks, spec.block_fields(), spec.output_strides(), strict=True)
    ):
        blocks.append(
            {
                "index": index,
                "stride": block.stride,
                "output_stride": output_stride,
                "in_channels": block.in_channels,
                "out_channels": block.out_channels,
                "group_width": block.group_width,
                "se": block.se,
                "dilations": list(block.dilations),
                "bound": before.max_gapless_rate,
                "slack": before.max_gapless_rate - max(block.dilations),
                "field_of_view": after.size,
            }
        )
    return {
        "name": spec.name,
        "num_classes": spec.num_classes,
        "decoder": spec.decoder.type,
        "input_size": [height, width],
        "params": count_parameters(model),
        "macs": count_macs(model, (1, spec.stem.in_channels, height, width)),
        "field_of_view": spec.field_of_view,
        "gaps": len(spec.gaps()),
        "blocks": blocks,
    }


def format_info(info: dict[str, Any]) -> str:
    height, width = info["input_size"]
    header = [
        f"architecture   {info['name']} ({info['num_classes']} classes, {info['decoder']})",
        f"parameters     {info['params']:,}",
        f"MACs           {info['macs'] / 1e9:.3f} G at 1x3x{height}x{width} (convolutions)",
        f"field of view  {info['field_of_view']} px"
        + (f"  ({info['gaps']} block(s) with a gap)" if info["gaps"] else ""),
        "",
    ]
    rows = [
        [
            b["index"],
            b["stride"],
            b["output_stride"],
            f"{b['in_channels']}->{b['out_channels']}",
            b["group_width"],
            ",".join(map(str, b["dilations"])),
            b["bound"],
            b["slack"],
            b["field_of_view"],
        ]
        for b in info["blocks"]
    ]
    headers = ["block", "stride", "os", "channels", "gw", "dilations", "bound", "slack", "fov"]
    return "\n".join(header) + format_table(headers, rows)
