"""Label conventions shared by the data sets, the losses and the metrics, and the colours of classes."""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = 255  # a label pixel that no loss or metric counts (void classes, padding, rotation fill)

RGB = tuple[int, int, int]


def palette_problem(value: Any, count: int) -> str | None:
    """What is wrong with ``value`` as the colours of ``count`` classes (a list of ``[red, green, blue]``
    integers 0..255, one per class in id order), or None when it is right."""
    expected = f"expected {count} colours, one [red, green, blue] of integers 0..255 per class, in id order"
    if not isinstance(value, (list, tuple)) or len(value) != count:
        found = f"{len(value)} entries" if isinstance(value, (list, tuple)) else repr(value)
        return f"{found}; {expected}"
    for index, colour in enumerate(value):
        if not (
            isinstance(colour, (list, tuple))
            and len(colour) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)
        ):
            return f"[{index}]: {colour!r}; {expected}"
    return None


def as_palette(value: Any) -> tuple[RGB, ...]:
    """``value`` (checked by ``palette_problem``) as a tuple of RGB triples."""
    return tuple((c[0], c[1], c[2]) for c in value)
