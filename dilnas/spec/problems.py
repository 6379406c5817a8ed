"""How the file parsers (architecture JSON, search-space YAML) report problems: each collects every problem
with its path inside the file and raises one error listing them all, so that one run shows everything.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from dilnas.utils.errors import InvalidFileError


class ProblemCollector:
    """A parser's list of problems, each ``"<path>: <message>"``, and the error that reports them.

    Subclasses set ``error``, the ``InvalidFileError`` subclass naming what kind of file it is.
    """

    error: ClassVar[type[InvalidFileError]]

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        """Record a problem at ``path`` (a JSON/YAML path such as ``blocks[2].stride``) and go on parsing."""
        self.problems.append(f"{path}: {message}")

    def fail(self, problems: list[str] | None = None) -> NoReturn:
        """Raise ``error`` listing ``problems`` (by default those collected): for a document too broken to
        parse further."""
        raise self.error(self.source, self.problems if problems is None else problems)

    def fail_if_problems(self) -> None:
        """Raise ``error`` listing every problem collected, if there is one."""
        if self.problems:
            self.fail()


def join_path(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top of the document (``path`` empty)."""
    return f"{path}.{key}" if path else key


def json_type(value: Any) -> str:
    """What a parsed value is, in the words of JSON (and of YAML's JSON subset), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
