"""``dilnas`` lists every command of setup.cfg, and every command answers --version."""

from __future__ import annotations

import configparser
import subprocess
import sys

import pytest

from dilnas import __version__
from dilnas.commands import COMMANDS
from tests.helpers import REPO


def console_scripts() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(line.split(" = ") for line in lines)


def test_dilnas_lists_every_command():
    scripts = console_scripts()
    assert scripts.pop("dilnas") == "dilnas.commands:main"
    assert sorted(name for name, _ in COMMANDS) == sorted(scripts)
    result = subprocess.run(
        [sys.executable, "-m", "dilnas.commands"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0 and all(name in result.stdout for name in scripts)


@pytest.mark.parametrize("module", ["dilnas.commands", "dilnas.info", "dilnas.bench"])
def test_version(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0 and result.stdout.strip().endswith(__version__)
