"""Builders and constants shared by the test modules; fixtures stay in the conftest.py files.

A test module imports what it shares from here (``tests.helpers`` and its modules), never from another test
module nor from a conftest.py. This module holds the paths into the checkout and the subprocess environment:

- ``tests.helpers.commands``: the commands in a subprocess (tiny runs, one-line errors, metrics, TensorBoard);
- ``tests.helpers.networks``: RegSeg's dilation schedules, varied BatchNorm statistics;
- ``tests.helpers.sweeps``: fake search runs and sweeps for dilnas-report and the ground truth;
- ``tests.helpers.fake_data``: tiny fake Cityscapes and CamVid trees, one-line data errors;
- ``tests/helpers/ddp_worker.py``: the script the DDP tests run under torchrun.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "experiments" / "regseg_paper"
EXP48_PATH = PAPER / "exp48_decoder26.json"
EXP53_PATH = PAPER / "exp53_decoder29.json"
SYNTHETIC = REPO / "experiments" / "synthetic"
TINY = SYNTHETIC / "tiny_rate1.json"  # the tiny network the command tests retrain
# Key and shape of every entry of the public RegSeg exp48_decoder26 checkpoint (from its state dict).
OFFICIAL_TSV = REPO / "tests" / "data" / "regseg_exp48_decoder26_official_state_dict.tsv"
DDP_WORKER = Path(__file__).resolve().parent / "ddp_worker.py"

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # for the commands run in a subprocess
