"""The files dilnas ships inside its package, and the lookup of one of them by name.

In a source checkout ``dilnas/conf``, ``dilnas/search_spaces``, ``dilnas/archs``, ``dilnas/archs_synthetic``
and ``dilnas/archs_camvid`` are links to the repository's ``conf/``, ``search_spaces/``,
``experiments/regseg_paper/``, ``experiments/synthetic/`` and ``experiments/camvid/reference/``; a wheel holds
copies of them (``setup.cfg``'s package data). Either way a command finds them through the package, from any
directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from dilnas.utils.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_DIR / "conf"  # Hydra's config directory
SEARCH_SPACES_DIR = PACKAGE_DIR / "search_spaces"  # <name>.yaml, loaded by dilnas.spec.space
ARCHS_DIR = PACKAGE_DIR / "archs"  # the paper's architectures, <name>.json, loaded by dilnas.spec.arch
# Every folder of shipped architectures (names are unique across them): the paper's, the synthetic
# experiments' (tiny_short_dilated, ...) and the CamVid protocol's reference rows (camvid_lite-1-2-4-4, ...).
ARCH_DIRS = (ARCHS_DIR, PACKAGE_DIR / "archs_synthetic", PACKAGE_DIR / "archs_camvid")


def available(directories: Path | Sequence[Path], suffix: str) -> list[str]:
    """The names of the shipped files with ``suffix`` in ``directories``."""
    folders = [directories] if isinstance(directories, Path) else list(directories)
    return sorted(path.stem for folder in folders for path in folder.glob(f"*{suffix}"))


def shipped_or_path(
    name_or_path: str | os.PathLike,
    directories: Path | Sequence[Path],
    suffixes: tuple[str, ...],
    what: str,
) -> Path:
    """A path as given when it ends with one of ``suffixes`` or names a folder; otherwise the shipped file
    ``<directory>/<name><suffixes[0]>`` of the first of ``directories`` that has it, or a UserError listing
    the shipped names."""
    text = str(name_or_path)
    if text.endswith(suffixes) or os.sep in text or "/" in text:
        return Path(text)
    folders = [directories] if isinstance(directories, Path) else list(directories)
    found = [folder / f"{text}{suffixes[0]}" for folder in folders]
    found = [path for path in found if path.is_file()]
    if not re.fullmatch(r"[\w.-]+", text) or not found:
        names = ", ".join(available(folders, suffixes[0])) or "none"
        raise UserError(
            f"unknown {what} {text!r}; available: {names} (or give the path of a {suffixes[0]} file)"
        )
    return found[0]
