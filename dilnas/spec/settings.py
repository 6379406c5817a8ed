"""One source for what a config setting means and which values it allows: ``setting(default, doc, ...)`` puts
both into the dataclass field's metadata; ``check_settings`` refuses a value out of range (one line naming the
key and the range) and ``describe_settings`` lists the documentation for ``--help``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from dilnas.utils.errors import UserError

MISSING = "???"  # OmegaConf's marker of a value the user must give (omegaconf.MISSING)


@dataclass(frozen=True)
class Range:
    """Allowed numbers: ``low``/``high`` bounds (None: unbounded), each inclusive unless open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"a number in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"a number {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"a number {'<' if self.high_open else '<='} {_number(self.high)}"
        return "a finite number"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = False,
    length: int | None = None,
) -> Any:
    """A dataclass field with its one-line documentation and, for numbers (or lists of numbers, each
    element), its allowed range; ``finite=True`` only refuses inf and nan; ``length``: a list's length."""
    metadata: dict[str, Any] = {"doc": doc}
    if low is not None or high is not None or finite:
        metadata["range"] = Range(low, high, low_open, high_open)
    if length is not None:
        metadata["length"] = length
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_settings(obj: Any, prefix: str = "") -> None:
    """Raise UserError for the first setting of the dataclass ``obj`` (nested ones included) whose value is
    out of its range: ``trainer.batch_size=0: expected a number >= 1``."""
    for item in dataclasses.fields(obj):
        value = getattr(obj, item.name)
        key = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_settings(value, f"{key}.")
            continue
        if value is None:
            continue
        length, allowed = item.metadata.get("length"), item.metadata.get("range")
        if length is not None and len(value) != length:
            each = f", each {allowed.describe()}" if allowed else ""
            raise UserError(f"{key}={_shown(value)}: expected {length} numbers{each}")
        if allowed is None:
            continue
        values = value if isinstance(value, list) else [value]
        for number in values:
            if isinstance(number, bool) or not isinstance(number, int | float) or not allowed.allows(number):
                raise UserError(f"{key}={_shown(value)}: expected {_each(value)}{allowed.describe()}")


def _shown(value: Any) -> str:
    return "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)


def _each(value: Any) -> str:
    return "each element " if isinstance(value, list) else ""


@dataclass(frozen=True)
class SettingDoc:
    key: str
    default: str
    doc: str


def describe_settings(
    schema: type, prefix: str = "", skip: frozenset[str] = frozenset()
) -> Iterator[SettingDoc]:
    """Every leaf setting of ``schema`` with its default and documentation, nested dataclasses flattened
    (``trainer.batch_size``); groups in ``skip`` are left out."""
    for item in dataclasses.fields(schema):
        key = f"{prefix}{item.name}"
        if key in skip:
            continue
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default):
            yield from describe_settings(type(default), f"{key}.", skip)
            continue
        yield SettingDoc(key, _default_text(default), item.metadata.get("doc", ""))


def _default_text(value: Any) -> str:
    if value == MISSING:
        return "(required)"
    if isinstance(value, Enum):
        return str(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return _shown(value)


E = TypeVar("E", bound=Enum)


def parse_choice(choices: type[E], value: E | str, name: str) -> E:
    """``value`` as a member of the str Enum ``choices`` (a member passes through, its text is looked up);
    anything else is a one-line UserError naming ``name`` and the allowed values."""
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(member.value for member in choices)
        raise UserError(f"{name}={value!r}: expected one of {allowed}") from None
