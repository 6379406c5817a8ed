"""Progress bars: shown on a terminal, silent in logs and captured output (dilnas.utils.progress)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dilnas.train.trainer import evaluate
from dilnas.utils.progress import OFF, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """A terminal on standard error; set inside the test, as pytest's capture resets ``sys.stderr`` between a
    fixture's setup and the test."""
    stream = Terminal()
    monkeypatch.delenv(OFF, raising=False)
    return lambda: monkeypatch.setattr("sys.stderr", stream) or stream


def test_a_bar_shows_on_a_terminal_with_its_description_count_and_unit(terminal):
    shown = terminal()
    with progress_bar(10, "train", initial=4, unit="step") as bar:
        bar.update(6)
    assert "train" in shown.getvalue() and "step/s" in shown.getvalue()
    assert "4/10" in shown.getvalue()  # a resumed run starts where it stopped


def test_no_bar_when_not_a_terminal_or_turned_off(monkeypatch, terminal):
    captured = io.StringIO()  # what a log file or a pipe sees
    monkeypatch.setattr("sys.stderr", captured)
    with progress_bar(3, "train") as bar:
        bar.update(3)
    assert captured.getvalue() == ""
    shown = terminal()
    monkeypatch.setenv(OFF, "0")
    with progress_bar(3, "train") as bar:
        bar.update(3)
    monkeypatch.delenv(OFF)
    with progress_bar(3, "train", enabled=False) as bar:  # a DDP rank other than 0
        bar.update(3)
    assert shown.getvalue() == ""


def test_evaluate_shows_its_batches_only_when_asked(terminal):
    shown = terminal()
    model = nn.Conv2d(3, 2, 1)
    data = TensorDataset(torch.randn(6, 3, 4, 4), torch.randint(0, 2, (6, 4, 4)))
    loader = DataLoader(data, batch_size=2)
    quiet = evaluate(model, loader, 2, torch.device("cpu"))
    assert shown.getvalue() == ""
    loud = evaluate(model, loader, 2, torch.device("cpu"), progress="evaluate")
    assert "evaluate" in shown.getvalue() and "0/3" in shown.getvalue()
    assert torch.equal(quiet.matrix, loud.matrix)
