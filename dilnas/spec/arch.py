"""The architecture as data: a complete fixed RegSeg, its JSON form, and validation.

One JSON format describes every network dilnas builds::

    {"format": "dilnas.arch", "schema_version": 1, "name": ..., "num_classes": 19,
     "stem": {"in_channels": 3, "out_channels": 32, "kernel_size": 3, "stride": 2},
     "blocks": [{"type": "D", "stride": 2, "in_channels": 32, "out_channels": 48,
                 "group_width": 16, "se": true, "dilations": [1]}, ...],
     "decoder": {"type": "decoder26"},
     "search": {...}, "provenance": {...}}          # optional, written by the deriver

Loading checks everything and reports every problem at once, each with its JSON path and what is
allowed. Files are read with ``json`` and never evaluated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dilnas.spec.fov import ReceptiveField
from dilnas.spec.problems import ProblemCollector, join_path, json_type
from dilnas.spec.reading import parse_json, read_text
from dilnas.spec.shipped import ARCH_DIRS, available, shipped_or_path
from dilnas.utils.errors import InvalidFileError
from dilnas.utils.files import atomic_write_json

FORMAT = "dilnas.arch"
SCHEMA_VERSION = 1
BLOCK_TYPES = ("D",)
DECODER_TYPES = ("decoder26", "decoder29")
# The decoders read the last feature map at each of these output strides; the body must end at the last.
DECODER_OUTPUT_STRIDES = (4, 8, 16)
STRIDES = (1, 2)

# schema_version N -> function upgrading a version-N dict to version N+1. Empty while only version 1 exists.
UPGRADES: dict[int, Callable[[dict], dict]] = {}


class ArchError(InvalidFileError):
    """An architecture that cannot be built; lists every problem with its JSON path."""

    what = "architecture"


@dataclass(frozen=True)
class StemSpec:
    """The stride-2 3x3 ConvBnReLU before the body."""

    in_channels: int = 3
    out_channels: int = 32
    kernel_size: int = 3
    stride: int = 2


@dataclass(frozen=True)
class BlockSpec:
    """One RegSeg D block. ``dilations`` has one rate per branch of its grouped 3x3 convolution."""

    in_channels: int
    out_channels: int
    stride: int
    dilations: tuple[int, ...]
    group_width: int = 16
    se: bool = True
    type: str = "D"

    @property
    def branch_channels(self) -> int:
        return self.out_channels // len(self.dilations)


@dataclass(frozen=True)
class DecoderSpec:
    type: str = "decoder26"


@dataclass(frozen=True)
class Gap:
    """A branch whose rate breaks the no-gap rule."""

    block: int
    branch: int
    rate: int
    bound: int

    def describe(self) -> str:
        return (
            f"blocks[{self.block}].dilations[{self.branch}]: rate {self.rate} leaves a gap "
            f"(the no-gap bound r*s <= k before this block allows 1..{self.bound})"
        )


@dataclass(frozen=True)
class ArchSpec:
    """A complete fixed RegSeg."""

    name: str
    num_classes: int
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    search: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None

    # ---- field of view -------------------------------------------------------------------------
    def stem_field(self) -> ReceptiveField:
        return ReceptiveField().through(self.stem.kernel_size, self.stem.stride)

    def block_fields(self) -> list[tuple[ReceptiveField, ReceptiveField]]:
        """(receptive field before, after) each block."""
        fields = []
        current = self.stem_field()
        for block in self.blocks:
            after = current.through_dblock(block.stride, block.dilations)
            fields.append((current, after))
            current = after
        return fields

    def bounds(self) -> list[int]:
        """The no-gap bound of each block: the largest rate r with r*s <= k before it."""
        return [before.max_gapless_rate for before, _ in self.block_fields()]

    @property
    def field_of_view(self) -> int:
        """Receptive field of one output pixel of the body, in input pixels."""
        return self.block_fields()[-1][1].size if self.blocks else self.stem_field().size

    def gaps(self) -> list[Gap]:
        found = []
        for index, (block, (before, _)) in enumerate(zip(self.blocks, self.block_fields(), strict=True)):
            for branch, rate in enumerate(block.dilations):
                if before.leaves_gap(rate):
                    found.append(Gap(index, branch, rate, before.max_gapless_rate))
        return found

    # ---- structure -----------------------------------------------------------------------------
    def output_strides(self) -> list[int]:
        """Output stride after each block."""
        strides, stride = [], self.stem.stride
        for block in self.blocks:
            stride *= block.stride
            strides.append(stride)
        return strides

    def feature_taps(self) -> dict[int, int]:
        """Output stride -> index of the last block at that stride (where the decoder reads)."""
        return {stride: index for index, stride in enumerate(self.output_strides())}

    def with_num_classes(self, num_classes: int) -> ArchSpec:
        return replace(self, num_classes=num_classes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write this architecture as JSON (``save_arch``: atomically, sorted keys)."""
        return save_arch(self, path)

    # ---- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "num_classes": self.num_classes,
            "stem": {
                "in_channels": self.stem.in_channels,
                "out_channels": self.stem.out_channels,
                "kernel_size": self.stem.kernel_size,
                "stride": self.stem.stride,
            },
            "blocks": [
                {
                    "type": block.type,
                    "stride": block.stride,
                    "in_channels": block.in_channels,
                    "out_channels": block.out_channels,
                    "group_width": block.group_width,
                    "se": block.se,
                    "dilations": list(block.dilations),
                }
                for block in self.blocks
            ],
            "decoder": {"type": self.decoder.type},
        }
        if self.search is not None:
            data["search"] = self.search
        if self.provenance is not None:
            data["provenance"] = self.provenance
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<architecture>", allow_gaps: bool = False) -> ArchSpec:
        """Parse and validate; raise ArchError listing every problem."""
        return _Parser(source).parse(data, allow_gaps=allow_gaps)


def available_archs() -> list[str]:
    """Names of the shipped architectures (``ARCH_DIRS``: the paper's, the synthetic experiments', the CamVid
    protocol's reference rows)."""
    return available(ARCH_DIRS, ".json")


def load_arch(name_or_path: str | os.PathLike, *, allow_gaps: bool = False) -> ArchSpec:
    """A shipped architecture by name (``exp48_decoder26``) or a JSON file by path. Raises UserError (one
    line) for any problem with the file."""
    path = shipped_or_path(name_or_path, ARCH_DIRS, (".json",), "architecture")
    data = parse_json(read_text(path, "architecture"), str(path))
    return ArchSpec.from_dict(data, source=str(path), allow_gaps=allow_gaps)


def save_arch(spec: ArchSpec, path: str | os.PathLike) -> Path:
    """Write atomically, with sorted keys and indentation."""
    return atomic_write_json(path, spec.to_dict())


# ---- validation ----------------------------------------------------------------------------------
_TOP_REQUIRED = ("format", "schema_version", "name", "num_classes", "stem", "blocks", "decoder")
_TOP_OPTIONAL = ("search", "provenance")
_STEM_KEYS = ("in_channels", "out_channels", "kernel_size", "stride")
_BLOCK_REQUIRED = ("stride", "in_channels", "out_channels", "dilations")
_BLOCK_OPTIONAL = ("type", "group_width", "se")
_DECODER_KEYS = ("type",)


class _Parser(ProblemCollector):
    """Collects every problem, each prefixed with its JSON path."""

    error = ArchError

    # -- primitives
    def keys(self, obj: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> bool:
        if not isinstance(obj, dict):
            self.problem(path, f"expected an object, got {json_type(obj)}")
            return False
        allowed = required + optional
        for key in obj:
            if key not in allowed:
                self.problem(join_path(path, key), f"unknown key; allowed: {', '.join(allowed)}")
        for key in required:
            if key not in obj:
                self.problem(join_path(path, key), "missing")
        return True

    def integer(self, obj: dict, key: str, path: str, minimum: int = 1, default: int | None = None) -> int:
        value = obj.get(key, default)
        where = join_path(path, key)
        if value is None:
            return minimum  # reported as missing by keys()
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"expected an integer >= {minimum}, got {json_type(value)} {value!r}")
            return minimum
        if value < minimum:
            self.problem(where, f"{value} is not allowed; expected an integer >= {minimum}")
        return value

    def choice(self, obj: dict, key: str, path: str, allowed: tuple, default: Any = None) -> Any:
        value = obj.get(key, default)
        if value is None:
            return allowed[0]
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            shown = ", ".join(json.dumps(item) for item in allowed)
            self.problem(join_path(path, key), f"{json.dumps(value)} is not allowed; allowed: {shown}")
            return allowed[0]
        return value

    # -- sections
    def parse(self, data: Any, *, allow_gaps: bool) -> ArchSpec:
        if not isinstance(data, dict):
            self.fail([f"$: expected a JSON object, got {json_type(data)}"])
        if data.get("format") != FORMAT:
            self.fail([f"format: expected {FORMAT!r}, got {data.get('format')!r}"])
        data = self.upgrade(data)
        self.keys(data, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        name = data.get("name", "")
        if not isinstance(name, str) or not name:
            self.problem("name", f"expected a non-empty string, got {json_type(name)} {name!r}")
        num_classes = self.integer(data, "num_classes", "")
        stem = self.parse_stem(data.get("stem", {}))
        blocks = self.parse_blocks(data.get("blocks", []))
        decoder = self.parse_decoder(data.get("decoder", {}))
        extras = {}
        for key in _TOP_OPTIONAL:
            value = data.get(key)
            if value is not None and not isinstance(value, dict):
                self.problem(key, f"expected an object, got {json_type(value)}")
            extras[key] = value

        # Structure and gaps are checked even when fields had problems (with placeholders for the bad
        # values), so that one run reports everything.
        spec = ArchSpec(
            name=name,
            num_classes=num_classes,
            stem=stem,
            blocks=tuple(blocks),
            decoder=decoder,
            search=extras["search"],
            provenance=extras["provenance"],
        )
        self.check_structure(spec)
        if not allow_gaps:
            for gap in spec.gaps():
                self.problems.append(gap.describe() + "; set allow_gaps=true to accept it")
        self.fail_if_problems()
        return spec

    def upgrade(self, data: dict) -> dict:
        version = data.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            self.fail([f"schema_version: expected an integer, got {version!r}"])
        if version > SCHEMA_VERSION or version < 1 or (version < SCHEMA_VERSION and version not in UPGRADES):
            self.fail([f"schema_version: unknown version {version}; this dilnas reads 1..{SCHEMA_VERSION}"])
        while version < SCHEMA_VERSION:
            data = UPGRADES[version](data)
            version += 1
        return data

    def parse_stem(self, obj: Any) -> StemSpec:
        if not self.keys(obj, "stem", _STEM_KEYS):
            return StemSpec()
        stem = StemSpec(
            in_channels=self.integer(obj, "in_channels", "stem"),
            out_channels=self.integer(obj, "out_channels", "stem"),
            kernel_size=self.integer(obj, "kernel_size", "stem"),
            stride=self.choice(obj, "stride", "stem", STRIDES),
        )
        if stem.kernel_size % 2 == 0:
            self.problem("stem.kernel_size", f"{stem.kernel_size} is not allowed; expected an odd integer")
        return stem

    def parse_blocks(self, obj: Any) -> list[BlockSpec]:
        if not isinstance(obj, list) or not obj:
            self.problem("blocks", f"expected a non-empty list of blocks, got {json_type(obj)}")
            return []
        return [self.parse_block(item, f"blocks[{index}]") for index, item in enumerate(obj)]

    def parse_block(self, obj: Any, path: str) -> BlockSpec:
        if not self.keys(obj, path, _BLOCK_REQUIRED, _BLOCK_OPTIONAL):
            return BlockSpec(1, 1, 1, (1,))
        se = obj.get("se", True)
        if not isinstance(se, bool):
            self.problem(join_path(path, "se"), f"expected true or false, got {json_type(se)} {se!r}")
        block = BlockSpec(
            in_channels=self.integer(obj, "in_channels", path),
            out_channels=self.integer(obj, "out_channels", path),
            stride=self.choice(obj, "stride", path, STRIDES),
            dilations=self.parse_dilations(obj.get("dilations"), join_path(path, "dilations")),
            group_width=self.integer(obj, "group_width", path, default=16),
            se=bool(se),
            type=self.choice(obj, "type", path, BLOCK_TYPES, default="D"),
        )
        branches = len(block.dilations)
        if block.out_channels % branches:
            self.problem(
                join_path(path, "out_channels"),
                f"{block.out_channels} is not divisible by the number of branches ({branches})",
            )
        elif block.branch_channels % block.group_width:
            self.problem(
                join_path(path, "out_channels"),
                f"{block.out_channels} split into {branches} branch(es) of {block.branch_channels} channels "
                f"is not divisible by group_width {block.group_width}",
            )
        return block

    def parse_dilations(self, obj: Any, path: str) -> tuple[int, ...]:
        if obj is None:
            return (1,)  # reported as missing by keys()
        if not isinstance(obj, list) or not obj:
            self.problem(path, f"expected a non-empty list of integer rates >= 1, got {json_type(obj)}")
            return (1,)
        rates = []
        for index, rate in enumerate(obj):
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
                self.problem(f"{path}[{index}]", f"rate {rate!r} is not allowed; expected an integer >= 1")
                rates.append(1)
            else:
                rates.append(rate)
        return tuple(rates)

    def parse_decoder(self, obj: Any) -> DecoderSpec:
        if not self.keys(obj, "decoder", _DECODER_KEYS):
            return DecoderSpec()
        return DecoderSpec(type=self.choice(obj, "type", "decoder", DECODER_TYPES))

    def check_structure(self, spec: ArchSpec) -> None:
        if not spec.blocks:
            return
        channels, where = spec.stem.out_channels, "stem.out_channels"
        for index, block in enumerate(spec.blocks):
            if block.in_channels != channels:
                self.problem(
                    f"blocks[{index}].in_channels",
                    f"{block.in_channels} does not match {where} = {channels}",
                )
            channels, where = block.out_channels, f"blocks[{index}].out_channels"
        strides = spec.output_strides()
        reached = sorted(set(strides))
        if not set(DECODER_OUTPUT_STRIDES) <= set(reached) or strides[-1] != DECODER_OUTPUT_STRIDES[-1]:
            self.problem(
                "blocks",
                f"decoder {spec.decoder.type!r} reads features at output strides "
                f"{', '.join(map(str, DECODER_OUTPUT_STRIDES))} and the body must end at "
                f"{DECODER_OUTPUT_STRIDES[-1]}; these blocks reach {', '.join(map(str, reached))}",
            )
