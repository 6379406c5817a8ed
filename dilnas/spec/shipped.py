"""The files dilnas ships inside its package, and the lookup of one of them by name.

In a source checkout ``dilnas/conf``, ``dilnas/search_spaces`` and ``dilnas/archs`` are links to the
repository's ``conf/``, ``search_spaces/`` and ``experiments/regseg_paper/``; a wheel holds copies of them
(``setup.cfg``'s package data). Either way a command finds them through the package, from any directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dilnas.utils.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_DIR / "conf"  # Hydra's config directory
SEARCH_SPACES_DIR = PACKAGE_DIR / "search_spaces"  # <name>.yaml, loaded by dilnas.spec.space
ARCHS_DIR = PACKAGE_DIR / "archs"  # the paper's architectures, <name>.json, loaded by dilnas.spec.arch


def available(directory: Path, suffix: str) -> list[str]:
    """The names of the shipped files with ``suffix`` in ``directory``."""
    return sorted(path.stem for path in directory.glob(f"*{suffix}"))


def shipped_or_path(
    name_or_path: str | os.PathLike, directory: Path, suffixes: tuple[str, ...], what: str
) -> Path:
    """A path as given when it ends with one of ``suffixes`` or names a folder; otherwise the shipped file
    ``directory/<name><suffixes[0]>``, or a UserError listing the shipped names."""
    text = str(name_or_path)
    if text.endswith(suffixes) or os.sep in text or "/" in text:
        return Path(text)
    path = directory / f"{text}{suffixes[0]}"
    if not re.fullmatch(r"[\w.-]+", text) or not path.is_file():
        names = ", ".join(available(directory, suffixes[0])) or "none"
        raise UserError(
            f"unknown {what} {text!r}; available: {names} (or give the path of a {suffixes[0]} file)"
        )
    return path
