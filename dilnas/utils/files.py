"""Atomic file writes: a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from dilnas.utils.errors import UserError, os_reason

RUN_LOCK = ".lock"  # the lock file of a run directory's writer (``dilnas.train.run_dir.RunDir.acquire``)


class UnwritableError(UserError):
    """A file that cannot be written where asked (a file in the way, no permission, a full disk)."""


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], object],
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    What ``write`` returns is ignored (so ``handle.write``, which returns a byte count, will do). ``check``,
    when given, reads the complete temporary file before the rename; if it raises, nothing is written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise UnwritableError(f"{path}: cannot write here: {os_reason(error)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        if check is not None:
            check(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException as error:
        # Leave nothing behind: the destination keeps its previous content (or stays absent).
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a directory in the way
            raise UnwritableError(f"{path}: cannot write: {os_reason(error)}") from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_csv(
    path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """A CSV file of ``rows`` (dicts keyed by ``columns``; ``\\n`` line ends), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def dumps_json(data: Any) -> str:
    """The one JSON style dilnas writes: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, dumps_json(data))


def user_cache_dir() -> Path:
    """Where dilnas keeps caches it cannot keep beside their data: ``$XDG_CACHE_HOME/dilnas``, by default
    ``~/.cache/dilnas``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dilnas"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_unused_dir(run_dir: Path, own_files: set[str | None]) -> None:
    """Remove ``run_dir`` when it holds nothing but ``own_files`` and the writer's lock (what was made for a
    run that then failed on bad input: Hydra's ``.hydra/`` and log), and the folders made for it as far as they
    are empty, up to the working directory. The working directory itself, and a directory holding anything
    else, stay."""
    if not run_dir.is_dir() or run_dir.resolve() == Path.cwd().resolve():
        return
    if all(entry.name in own_files or entry.name == RUN_LOCK for entry in run_dir.iterdir()):
        shutil.rmtree(run_dir)
        cwd = Path.cwd().resolve()
        for parent in run_dir.resolve().parents:
            if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
                break
            parent.rmdir()


def refuse_writing_over_inputs(
    outputs: Sequence[Path], inputs: Sequence[str | os.PathLike | None], setting: str = "out"
) -> None:
    """The one output guard: a UserError, before anything is written, when a file a command would write is a
    file it reads (a checkpoint, an image, an architecture), naming both."""
    read = {Path(item).resolve(): Path(item) for item in inputs if item is not None and Path(item).exists()}
    for output in outputs:
        source = read.get(Path(output).resolve())
        if source is not None:
            raise UserError(
                f"{setting}: writing {output} would replace the input {source}; choose another {setting}="
            )
