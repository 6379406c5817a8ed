"""Reading the user's structured files (architecture JSON, search-space YAML) safely: a size limit before
reading, duplicate keys refused, and limits on nesting and on the number of values a document expands to
(YAML aliases can make a few lines expand to billions), each a one-line UserError instead of a
RecursionError or MemoryError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from dilnas.utils.errors import UserError

MAX_FILE_BYTES = 4 * 2**20  # an architecture or a space is a few kB
MAX_DEPTH = 32  # the formats nest 5 levels deep
MAX_VALUES = 100_000  # the paper's space with every candidate spelled out has about 2,000


def read_text(path: str | os.PathLike, what: str) -> str:
    """The file's text, refused when missing, unreadable, not UTF-8 or larger than ``MAX_FILE_BYTES``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(
                f"{path}: {size:,} bytes, larger than the {MAX_FILE_BYTES:,} bytes a {what} file may have"
            )
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read {what} file: {error}") from None


def parse_json(text: str, source: str) -> Any:
    """JSON with every key unique in its object, within the nesting and size limits."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{source}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except _DuplicateKey as error:
        raise UserError(f"{source}: not valid JSON: duplicate key {error.args[0]!r}") from None
    except RecursionError:
        raise UserError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    check_shape(data, source)
    return data


def parse_yaml(text: str, source: str) -> Any:
    """YAML through a safe loader (no Python objects), every key unique, within the limits."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {_yaml_message(error)}") from None
    except RecursionError:
        raise UserError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    check_shape(data, source)
    return data


def check_shape(data: Any, source: str) -> None:
    """Refuse a document nested deeper than ``MAX_DEPTH`` or expanding to more than ``MAX_VALUES`` values
    (counted once per reference, as a reader that walks it would; shared objects are sized only once)."""
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise UserError(f"{source}: nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict | list):
            return 1
        if id(node) not in sizes:
            children = node.values() if isinstance(node, dict) else node
            total = 1
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_VALUES:
                    raise UserError(
                        f"{source}: expands to more than {MAX_VALUES:,} values (YAML aliases?); not a dilnas file"
                    )
            sizes[id(node)] = total
        return sizes[id(node)]

    size(data, 0)


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error instead of a silent overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        keys = [self.construct_object(key_node, deep=deep) for key_node, _ in node.value]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                mark = node.value[index][0].start_mark
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_message(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}".replace("\n", " ")
