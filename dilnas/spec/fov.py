"""Field-of-view arithmetic and the no-gap rule. Pure Python: no torch.

A feature-map pixel "sees" ``size`` input pixels, and neighbouring feature-map pixels lie ``stride``
input pixels apart. A layer with kernel ``k'``, stride ``s'`` and dilation ``r`` turns that into
``size + (k' - 1) * r * stride`` and ``stride * s'``.

The no-gap rule (RegSeg, arXiv 2111.09957 v3): a 3x3 convolution with dilation ``r`` on such a map
leaves no hole between its taps iff ``r * stride <= size``; with several branches the largest rate binds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DBLOCK_KERNEL_SIZE = 3


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one feature-map pixel, in input pixels."""

    size: int = 1
    stride: int = 1

    def through(self, kernel_size: int, stride: int = 1, dilation: int = 1) -> ReceptiveField:
        """The receptive field after one more convolution or pooling layer."""
        return ReceptiveField(
            size=self.size + (kernel_size - 1) * dilation * self.stride,
            stride=self.stride * stride,
        )

    def through_dblock(self, stride: int, dilations: Sequence[int]) -> ReceptiveField:
        """After a RegSeg D block: 1x1, 3x3 (its largest rate binds), SE, 1x1.

        SE pools globally, and the shortcut sees less than the 3x3 path, so neither widens the field.
        """
        return self.through(DBLOCK_KERNEL_SIZE, stride, max(dilations))

    @property
    def max_gapless_rate(self) -> int:
        """Largest dilation of a 3x3 convolution on this map that leaves no gap: ``r * stride <= size``."""
        return self.size // self.stride

    def leaves_gap(self, rate: int) -> bool:
        """Whether a 3x3 convolution with dilation ``rate`` on this map leaves holes between its taps."""
        return rate * self.stride > self.size

    def gap_width(self, rate: int) -> int:
        """Input pixels left unseen between two neighbouring taps (0 when the rule holds)."""
        return max(0, rate * self.stride - self.size)


def chain_field(
    layers: Iterable[tuple[int, int, int]], start: ReceptiveField | None = None
) -> ReceptiveField:
    """Receptive field after a chain of ``(kernel_size, stride, dilation)`` layers."""
    field = start or ReceptiveField()
    for kernel_size, stride, dilation in layers:
        field = field.through(kernel_size, stride, dilation)
    return field


def first_gap(layers: Sequence[tuple[int, int, int]]) -> int | None:
    """Index of the first layer of a chain whose dilation breaks the no-gap rule, or None."""
    field = ReceptiveField()
    for index, (kernel_size, stride, dilation) in enumerate(layers):
        if kernel_size > 1 and field.leaves_gap(dilation):
            return index
        field = field.through(kernel_size, stride, dilation)
    return None


def padding_fraction(rate: int, height: int, width: int) -> float:
    """Share of the 8 off-centre taps of a 3x3 convolution with dilation ``rate`` that read zero padding.

    Averaged over every output position of a ``height`` x ``width`` map. A rate can leave no gap and still
    be useless at a small crop: when most taps land outside the map the branch sees mostly zeros during the
    search, so the search cannot judge it. Per axis, an offset of ``±rate`` stays inside for
    ``max(0, n - rate)`` of the ``n`` positions; a tap is inside when both its offsets are.
    """
    if rate < 1 or height < 1 or width < 1:
        raise ValueError(f"padding_fraction needs rate, height and width >= 1, got {rate}, {height}, {width}")

    def inside(offset: int, size: int) -> float:
        return 1.0 if offset == 0 else max(0, size - rate) / size

    outside = 0.0
    for dy in (-rate, 0, rate):
        for dx in (-rate, 0, rate):
            if dy or dx:
                outside += 1.0 - inside(dy, height) * inside(dx, width)
    return outside / 8
