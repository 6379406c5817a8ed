from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dilnas.spec.arch import ArchSpec, load_arch

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "experiments" / "regseg_paper"
EXP48_PATH = PAPER / "exp48_decoder26.json"
EXP53_PATH = PAPER / "exp53_decoder29.json"
# Key and shape of every entry of the public RegSeg exp48_decoder26 checkpoint (from its state dict).
OFFICIAL_TSV = REPO / "tests" / "data" / "regseg_exp48_decoder26_official_state_dict.tsv"

# The dilation schedules of RegSeg's ablations (public reference implementation), 13 blocks at stride 16.
SCHEDULES = {
    "exp30": 5 * [[1, 4]] + 8 * [[1, 10]],
    "exp43": [[1], [1, 2], [1, 4], [1, 6], [1, 8], [1, 10]] + 7 * [[1, 12]],
    "exp46": [[1], [1, 2], [1, 4], [1, 6], [1, 8]] + 8 * [[1, 10]],
    "exp47": [[1], [1, 2], [1, 4], [1, 6], [1, 8], [1, 10], [1, 12]] + 6 * [[1, 14]],
    "exp48": [[1], [1, 2]] + 4 * [[1, 4]] + 7 * [[1, 14]],
    "exp52": [[1], [1, 2], [1, 4]] + 10 * [[1, 6]],
}


@pytest.fixture(scope="session")
def exp48() -> ArchSpec:
    return load_arch(EXP48_PATH)


@pytest.fixture()
def exp48_dict() -> dict:
    return copy.deepcopy(json.loads(EXP48_PATH.read_text()))


def with_schedule(data: dict, schedule: list[list[int]]) -> dict:
    """exp48's macro-architecture with another dilation schedule on its 13 stride-16 blocks."""
    data = copy.deepcopy(data)
    for block, dilations in zip(data["blocks"][-13:], schedule, strict=True):
        block["dilations"] = list(dilations)
    return data
