"""Where a written file came from: the dilnas version, the git commit of the checkout and the time.

Gathered where files are written (a search's ``arch.json``, an export), never in the pure ``spec`` layer."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any

from dilnas import __version__


def git_commit() -> str | None:
    """The commit of the dilnas checkout, when it is one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def stamp(**details: Any) -> dict[str, Any]:
    """A ``provenance`` section: version, commit and time (UTC, seconds), then ``details`` (seed, overrides,
    checkpoint...)."""
    return {
        "dilnas_version": __version__,
        "git_commit": git_commit(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **details,
    }
