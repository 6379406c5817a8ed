"""RegSeg built from an architecture description (``dilnas.spec.arch.ArchSpec``).

Data flow: stem (1/2) -> D blocks (1/4, 1/8, 1/16) -> decoder (fuses 1/16, 1/8, 1/4) -> logits at 1/4
-> bilinear upsampling to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dilnas.models.blocks import ConvBnAct, DBlock
from dilnas.spec.arch import DECODER_OUTPUT_STRIDES, ArchSpec


@dataclass(frozen=True)
class DecoderWidths:
    head: int  # width of the 1/16 and 1/8 heads
    head4: int  # width of the 1/4 head
    conv: int  # width of the two 3x3 fusion convs


DECODER_WIDTHS = {
    "decoder26": DecoderWidths(head=128, head4=8, conv=64),
    "decoder29": DecoderWidths(head=256, head4=16, conv=128),
}


class RegSegDecoder(nn.Module):
    """RegSeg's decoder (decoder26 / decoder29).

    1x1 heads on the 1/16, 1/8 and 1/4 features; upsample 1/16 to 1/8 and add; 3x3 ConvBnReLU; upsample to 1/4
    and concatenate with the 1/4 head; 3x3 ConvBnReLU; 1x1 classifier (with bias).
    """

    def __init__(self, chs4: int, chs8: int, chs16: int, num_classes: int, widths: DecoderWidths):
        super().__init__()
        self.head16 = ConvBnAct(chs16, widths.head, 1)
        self.head8 = ConvBnAct(chs8, widths.head, 1)
        self.head4 = ConvBnAct(chs4, widths.head4, 1)
        self.conv8 = ConvBnAct(widths.head, widths.conv, 3, padding=1)
        self.conv4 = ConvBnAct(widths.conv + widths.head4, widths.conv, 3, padding=1)
        self.classifier = nn.Conv2d(widths.conv, num_classes, 1)

    def forward(self, x4: torch.Tensor, x8: torch.Tensor, x16: torch.Tensor) -> torch.Tensor:
        x16 = self.head16(x16)  # (N, head, H/16, W/16)
        x8 = self.head8(x8)  # (N, head, H/8, W/8)
        x4 = self.head4(x4)  # (N, head4, H/4, W/4)
        x8 = x8 + F.interpolate(x16, size=x8.shape[-2:], mode="bilinear", align_corners=False)
        x8 = self.conv8(x8)  # (N, conv, H/8, W/8)
        x8 = F.interpolate(x8, size=x4.shape[-2:], mode="bilinear", align_corners=False)
        x4 = self.conv4(torch.cat((x8, x4), dim=1))  # (N, conv, H/4, W/4)
        return self.classifier(x4)  # (N, classes, H/4, W/4)


class RegSegBody(nn.Module):
    """The D blocks in order; returns the last feature map at output strides 4, 8 and 16."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.blocks = nn.ModuleList(
            DBlock(b.in_channels, b.out_channels, b.dilations, b.group_width, b.stride, b.se)
            for b in spec.blocks
        )
        taps = spec.feature_taps()
        self.tap_indices = tuple(taps[stride] for stride in DECODER_OUTPUT_STRIDES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.tap_indices:
                features.append(x)
        return features  # [1/4, 1/8, 1/16]


class RegSeg(nn.Module):
    """A fixed RegSeg network, exactly as described by ``spec``."""

    # {"mean": [...], "std": [...]} its weights were trained with, when loaded from a checkpoint that records it
    normalisation: dict[str, list[float]] | None = None
    # The names of its classes in id order, and their colours where the data had its own, when loaded from a
    # checkpoint that records them
    class_names: tuple[str, ...] | None = None
    class_colours: tuple[tuple[int, int, int], ...] | None = None

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        stem = spec.stem
        self.stem = ConvBnAct(
            stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, padding=stem.kernel_size // 2
        )
        self.body = RegSegBody(spec)
        chs4, chs8, chs16 = (spec.blocks[index].out_channels for index in self.body.tap_indices)
        self.decoder = RegSegDecoder(chs4, chs8, chs16, spec.num_classes, DECODER_WIDTHS[spec.decoder.type])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)  # (N, stem, H/2, W/2)
        x4, x8, x16 = self.body(x)
        logits = self.decoder(x4, x8, x16)  # (N, classes, H/4, W/4)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
