"""Search spaces: a macro-architecture in which some dilation rates are candidate sets.

A search space is an architecture (dilnas/spec/arch.py) written in YAML, where a branch's dilation may be a
fixed rate, a list of candidates, ``auto`` (every rate from 1 to the branch's no-gap bound) or
``{auto: true, max: M, step: S}`` (auto capped at M and thinned), and where ``repeat: N`` expands a block.
The no-gap bound of a branch uses the largest field of view the earlier blocks can reach (every earlier
searchable branch at its largest candidate): a candidate above it leaves a gap in every architecture of
the space, so it is an error. Which combinations leave no gap is the deriver's business (``arch_with``
validates one). Files are read with ``yaml.safe_load`` and never evaluated.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dilnas.spec.arch import FORMAT as ARCH_FORMAT
from dilnas.spec.arch import SCHEMA_VERSION as ARCH_SCHEMA_VERSION
from dilnas.spec.arch import STRIDES, ArchError, ArchSpec
from dilnas.spec.fov import ReceptiveField, padding_fraction
from dilnas.spec.gapless import unreachable_candidates
from dilnas.spec.problems import ProblemCollector, join_path, json_type
from dilnas.spec.reading import parse_yaml, read_text
from dilnas.spec.shipped import SEARCH_SPACES_DIR, available, shipped_or_path
from dilnas.utils.errors import InvalidFileError

FORMAT = "dilnas.space"
SCHEMA_VERSION = 1
# A candidate whose off-centre taps read more than this share of zero padding at the search crop is flagged.
PADDING_WARNING = 0.5
MAX_REPEAT = 256  # a guard against a typo expanding millions of blocks

_TOP_REQUIRED = ("format", "schema_version", "name", "num_classes", "stem", "blocks", "decoder")
_TOP_OPTIONAL = ("description", "search_crop")
_AUTO_KEYS = ("auto", "max", "step")
_RULE = "r*s <= k at the largest reachable field of view"
_DILATION_ALLOWED = "an integer rate >= 1, a list of candidate rates, auto, or {auto: true, max: M, step: S}"


class SpaceError(InvalidFileError):
    """A search space that cannot be used; lists every problem with its YAML path."""

    what = "search space"


@dataclass(frozen=True)
class SearchableBranch:
    """One branch of one block whose dilation the search chooses."""

    block: int  # index in the expanded block list
    branch: int  # index in that block's dilations
    candidates: tuple[int, ...]  # sorted ascending, unique
    bound: int  # no-gap bound at the largest reachable field of view

    @property
    def key(self) -> str:
        return branch_key(self.block, self.branch)


def branch_key(block: int, branch: int) -> str:
    """How a searchable branch is named in logs, reports and a derived architecture's ``search`` section."""
    return f"block{block}.b{branch}"


def parse_branch_key(key: str) -> tuple[int, int]:
    """``block4.b1`` -> (4, 1); ValueError for anything else."""
    match = re.fullmatch(r"block(\d+)\.b(\d+)", key)
    if match is None:
        raise ValueError(f"{key!r} is not a branch key like block4.b1")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the macro-architecture and its searchable branches."""

    name: str
    base: ArchSpec  # every searchable branch holds its smallest candidate
    branches: tuple[SearchableBranch, ...]  # in block order, then branch order
    search_crop: tuple[int, int] | None
    digest: str  # sha256 of the canonical JSON of the parsed file: provenance for derived architectures
    description: str = ""

    def arch_with(self, rates: Sequence[int], name: str | None = None) -> ArchSpec:
        """The architecture with one rate per searchable branch (in order); a gap raises ArchError."""
        source, rates = f"search space {self.name}", list(rates)
        if len(rates) != len(self.branches):
            keys = ", ".join(branch.key for branch in self.branches)
            raise ArchError(source, [f"rates: expected {len(self.branches)} ({keys}), got {len(rates)}"])
        data, problems = self.base.to_dict(), []
        for branch, rate in zip(self.branches, rates, strict=True):
            if not hasattr(rate, "__index__") or operator.index(rate) not in branch.candidates:
                problems.append(
                    f"blocks[{branch.block}].dilations[{branch.branch}]: rate {rate!r} is not a candidate "
                    f"of this branch; allowed: {_describe(branch.candidates)}"
                )
            else:  # operator.index accepts numpy and torch integers and refuses floats
                data["blocks"][branch.block]["dilations"][branch.branch] = operator.index(rate)
        if problems:
            raise ArchError(source, problems)
        data["name"] = name or f"{self.name}-" + "_".join(str(operator.index(rate)) for rate in rates)
        return ArchSpec.from_dict(data, source=source)

    def padding_warnings(self, crop: tuple[int, int] | None = None) -> list[str]:
        """One line per branch whose candidates read mostly zero padding at ``crop`` (the search's real training
        crop; by default the space's declared ``search_crop``): more than half of the 3x3 kernel's nine taps,
        averaged over the positions of the feature map, fall outside it.

        Such a candidate cannot be judged fairly by the search: at that resolution it sees mostly zeros.
        """
        crop = crop or self.search_crop
        if crop is None:
            return []
        crop_h, crop_w = crop
        input_strides = [self.base.stem.stride, *self.base.output_strides()]
        warnings = []
        for branch in self.branches:
            stride = input_strides[branch.block]
            height, width = max(1, crop_h // stride), max(1, crop_w // stride)
            # The centre tap always reads the map: of the nine taps, the eight off-centre ones can fall outside.
            fractions = {rate: padding_fraction(rate, height, width) * 8 / 9 for rate in branch.candidates}
            flagged = [
                f"{rate} ({share:.0%})" for rate, share in fractions.items() if share > PADDING_WARNING
            ]
            if flagged:
                warnings.append(
                    f"blocks[{branch.block}].dilations[{branch.branch}]: at the training crop {crop_h}x{crop_w} "
                    f"the feature map is {height}x{width} (output stride {stride}) and candidates "
                    f"{', '.join(flagged)} read mostly padding (share of the kernel's taps outside the map)"
                )
        return warnings

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, recorded beside search results."""
        branches = [
            dict(key=b.key, block=b.block, branch=b.branch, candidates=list(b.candidates), bound=b.bound)
            for b in self.branches
        ]
        return {"name": self.name, "digest": self.digest, "branches": branches}


def auto_candidates(bound: int, maximum: int | None = None, step: int = 1) -> tuple[int, ...]:
    """Rates 1, 1+step, 1+2*step, ... up to min(bound, maximum), always including that largest rate."""
    top = bound if maximum is None else min(bound, maximum)
    if top < 1:
        return ()
    return tuple(sorted({*range(1, top + 1, step), top}))


def available_spaces() -> list[str]:
    """Names of the search spaces shipped in SEARCH_SPACES_DIR."""
    return available(SEARCH_SPACES_DIR, ".yaml")


def space_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped space by name (``regseg_exp48``) or a ``.yaml``/``.yml`` path as given."""
    return shipped_or_path(name_or_path, SEARCH_SPACES_DIR, (".yaml", ".yml"), "search space")


def load_space(name_or_path: str | os.PathLike) -> SearchSpace:
    """A shipped space by name (``regseg_exp48``) or a ``.yaml``/``.yml`` file by path; UserError otherwise."""
    path = space_path(name_or_path)
    data = parse_yaml(read_text(path, "search space"), str(path))
    return parse_space(data, source=str(path))


def parse_space(data: Any, *, source: str = "<search space>") -> SearchSpace:
    """Validate a parsed YAML document; raise SpaceError listing every problem."""
    return _SpaceParser(source).parse(data)


# ---- validation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dilation:
    """One parsed dilation entry: a fixed rate, explicit candidates, or auto (with cap and step)."""

    kind: str  # "fixed", "list", "auto" or "bad"
    rates: tuple[int, ...] = (1,)
    maximum: int | None = None
    step: int = 1


class _SpaceParser(ProblemCollector):
    """Collects every problem, each prefixed with its YAML path; those shared by every copy of a repeated
    block are reported once."""

    error = SpaceError

    def parse(self, data: Any) -> SearchSpace:
        if not isinstance(data, dict):
            self.fail([f"$: expected a mapping, got {json_type(data)}"])
        if data.get("format") != FORMAT:
            self.fail([f"format: expected {FORMAT!r}, got {data.get('format')!r}"])
        version = data.get("schema_version")
        if isinstance(version, bool) or version != SCHEMA_VERSION:
            self.fail([f"schema_version: unknown version {version!r}; this dilnas reads 1..{SCHEMA_VERSION}"])
        allowed = _TOP_REQUIRED + _TOP_OPTIONAL
        for key in data:
            if key not in allowed:
                self.problem(str(key), f"unknown key; allowed: {', '.join(allowed)}")
        description = data.get("description", "")
        if not isinstance(description, str):
            self.problem("description", f"expected a string, got {json_type(description)}")
        crop = self.parse_crop(data.get("search_crop"))

        blocks, dilations, repeats = self.expand_blocks(data.get("blocks"))
        arch_data = {key: data[key] for key in ("name", "num_classes", "stem", "decoder") if key in data}
        arch_data.update(format=ARCH_FORMAT, schema_version=ARCH_SCHEMA_VERSION, blocks=blocks)
        base = None
        try:  # gaps are checked below, at the largest reachable field of view
            base = ArchSpec.from_dict(arch_data, source=self.source, allow_gaps=True)
        except ArchError as error:
            self.problems.extend(error.problems)
        branches = self.walk_bounds(data.get("stem"), blocks, dilations)
        self.problems = _collapse_repeats(self.problems, repeats)
        if self.problems or base is None:
            self.fail()
        for index, rate in unreachable_candidates(base, branches):
            branch = branches[index]
            self.problem(
                f"blocks[{branch.block}].dilations[{branch.branch}]",
                f"candidate {rate} is in no gapless network of this space (with it, a later block's rate "
                "leaves a gap whatever the other branches choose); remove it",
            )
        self.problems = _collapse_repeats(self.problems, repeats)
        self.fail_if_problems()
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return SearchSpace(
            name=base.name,
            base=base,
            branches=tuple(branches),
            search_crop=crop,
            digest=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            description=description if isinstance(description, str) else "",
        )

    def parse_crop(self, value: Any) -> tuple[int, int] | None:
        if value is None:
            return None
        if isinstance(value, list) and len(value) == 2 and all(map(_is_rate, value)):
            return (value[0], value[1])
        self.problem("search_crop", f"expected [height, width] with integers >= 1, got {value!r}")
        return None

    def expand_blocks(self, obj: Any) -> tuple[Any, list[list[_Dilation]], list[tuple[int, int]]]:
        """Expand ``repeat`` and parse dilations; the blocks get the smallest candidates for arch.py."""
        if not isinstance(obj, list):
            return obj, [], []  # arch.py reports it
        blocks: list[Any] = []  # expanded block entries, as read (arch.py checks them)
        dilations: list[list[_Dilation]] = []
        repeats: list[tuple[int, int]] = []
        for entry in obj:
            start = len(blocks)
            if not isinstance(entry, dict):
                blocks.append(entry)  # arch.py reports it
                dilations.append([])
                continue
            count = entry.get("repeat", 1)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_REPEAT:
                self.problem(f"blocks[{start}].repeat", f"{count!r} is not allowed; expected 1..{MAX_REPEAT}")
                count = 1
            for index in range(start, start + count):
                block = {key: value for key, value in entry.items() if key != "repeat"}
                parsed = self.parse_dilations(entry.get("dilations"), f"blocks[{index}].dilations")
                if "dilations" in entry:
                    block["dilations"] = [min(item.rates) for item in parsed]
                blocks.append(block)
                dilations.append(parsed)
            if count > 1:
                repeats.append((start, start + count - 1))
        return blocks, dilations, repeats

    def parse_dilations(self, obj: Any, path: str) -> list[_Dilation]:
        if obj is None:
            return [_Dilation("bad")]  # missing: arch.py reports it
        if not isinstance(obj, list) or not obj:
            self.problem(
                path, f"expected a non-empty list with one entry per branch, each {_DILATION_ALLOWED}"
            )
            return [_Dilation("bad")]
        return [self.parse_dilation(item, f"{path}[{index}]") for index, item in enumerate(obj)]

    def parse_dilation(self, obj: Any, path: str) -> _Dilation:
        if _is_rate(obj):
            return _Dilation("fixed", (obj,))
        if obj == "auto":
            return _Dilation("auto")
        if isinstance(obj, list):
            if not obj:
                self.problem(path, f"empty candidate list; expected {_DILATION_ALLOWED}")
                return _Dilation("bad")
            before = len(self.problems)
            for index, rate in enumerate(obj):
                if not _is_rate(rate):
                    self.problem(
                        f"{path}[{index}]", f"candidate {rate!r} is not allowed; expected an integer >= 1"
                    )
                elif obj.index(rate) != index:
                    self.problem(f"{path}[{index}]", f"duplicate candidate {rate}")
            return _Dilation("list", tuple(sorted(obj))) if len(self.problems) == before else _Dilation("bad")
        if isinstance(obj, dict):
            for key in obj:
                if key not in _AUTO_KEYS:
                    self.problem(join_path(path, str(key)), f"unknown key; allowed: {', '.join(_AUTO_KEYS)}")
            if obj.get("auto") is not True:
                self.problem(join_path(path, "auto"), f"expected true, got {obj.get('auto')!r}")
            limits = {}
            for key in ("max", "step"):
                if key in obj and not _is_rate(obj[key]):
                    self.problem(
                        join_path(path, key), f"{obj[key]!r} is not allowed; expected an integer >= 1"
                    )
                limits[key] = obj[key] if _is_rate(obj.get(key)) else None
            return _Dilation("auto", maximum=limits["max"], step=limits["step"] or 1)
        self.problem(path, f"{obj!r} is not allowed; expected {_DILATION_ALLOWED}")
        return _Dilation("bad")

    def walk_bounds(self, stem: Any, blocks: Any, dilations: list[list[_Dilation]]) -> list[SearchableBranch]:
        """Bound each branch at the largest reachable field of view; bad values get arch.py's placeholders."""
        stem = stem if isinstance(stem, dict) else {}
        kernel = stem.get("kernel_size") if _is_rate(stem.get("kernel_size")) else 3
        field = ReceptiveField().through(kernel, _choice(stem.get("stride"), STRIDES))
        branches = []
        for index, parsed in enumerate(dilations):
            bound, largest = field.max_gapless_rate, 1
            for number, item in enumerate(parsed):
                path = f"blocks[{index}].dilations[{number}]"
                rates = item.rates
                if item.kind == "fixed" and rates[0] > bound:
                    self.problem(path, f"rate {rates[0]} leaves a gap ({_RULE}, allows 1..{bound})")
                for rate in rates if item.kind == "list" else ():
                    if rate > bound:
                        self.problem(
                            path,
                            f"candidate {rate} is above the no-gap bound {bound} of this block "
                            f"({_RULE}); allowed: 1..{bound}",
                        )
                if item.kind == "auto":
                    rates = auto_candidates(bound, item.maximum, item.step)
                    if not rates:
                        self.problem(path, f"auto has no admissible rate: the no-gap bound here is {bound}")
                        rates = (1,)
                if item.kind in ("list", "auto"):
                    branches.append(SearchableBranch(index, number, rates, bound))
                largest = max(largest, *rates)
            stride = _choice(blocks[index].get("stride"), STRIDES) if isinstance(blocks[index], dict) else 1
            field = field.through_dblock(stride, (largest,))
        return branches


def _collapse_repeats(problems: list[str], repeats: list[tuple[int, int]]) -> list[str]:
    """A problem shared by every copy of a repeated block is reported once as ``blocks[a..b]...``."""
    range_of = {index: (start, end) for start, end in repeats for index in range(start, end + 1)}
    pattern = re.compile(r"blocks\[(\d+)\](.*)", re.S)
    matches = [pattern.fullmatch(problem) for problem in problems]
    copies: dict[tuple[tuple[int, int], str], set[int]] = {}
    for match in matches:
        if match and int(match[1]) in range_of:
            copies.setdefault((range_of[int(match[1])], match[2]), set()).add(int(match[1]))
    collapsed: list[str] = []
    for problem, match in zip(problems, matches, strict=True):
        if match and int(match[1]) in range_of:
            (start, end), rest = range_of[int(match[1])], match[2]
            if len(copies[((start, end), rest)]) == end - start + 1:
                problem = f"blocks[{start}..{end}]{rest}"
        if problem not in collapsed:
            collapsed.append(problem)
    return collapsed


def _is_rate(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _choice(value: Any, allowed: tuple) -> Any:
    return value if value in allowed and not isinstance(value, bool) else allowed[0]


def _describe(candidates: Sequence[int]) -> str:
    if len(candidates) > 2 and list(candidates) == list(range(candidates[0], candidates[-1] + 1)):
        return f"{candidates[0]}..{candidates[-1]}"
    return ", ".join(map(str, candidates))
