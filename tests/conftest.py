"""Fixtures every test folder shares; the builders and paths they use are in tests.helpers."""

from __future__ import annotations

import copy
import json

import pytest

from dilnas.spec.arch import ArchSpec, load_arch
from tests.helpers import EXP48_PATH


@pytest.fixture(scope="session")
def exp48() -> ArchSpec:
    return load_arch(EXP48_PATH)


@pytest.fixture()
def exp48_dict() -> dict:
    return copy.deepcopy(json.loads(EXP48_PATH.read_text()))
