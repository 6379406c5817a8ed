"""The closing summary of ``make demo``: what was found, how good it is, where everything is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dilnas.analysis.demo_summary import demo_summary
from dilnas.spec.arch import ArchSpec, load_arch, save_arch
from dilnas.utils.errors import UserError
from tests.helpers import ENV, REPO


def demo_dir(root, with_retrain: bool = True):
    spec = load_arch("tiny_short_dilated")  # rates 2 and 4 in block 4 and 5
    search = {
        "space": "synthetic_tiny",
        "branches": {"block4.b1": {"choice": 2}, "block5.b1": {"choice": 4}},
        "selection": [{"rates": [1, 1], "miou": 60.0}, {"rates": [2, 4], "miou": 71.25}],
    }
    save_arch(ArchSpec.from_dict({**spec.to_dict(), "search": search}), root / "search" / "arch.json")
    if with_retrain:
        (root / "retrain").mkdir(parents=True)
        record = {"kind": "eval", "final": True, "step": 600, "val/miou": 88.5}
        (root / "retrain" / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    return root


def test_the_summary_says_what_was_found_how_good_and_where(tmp_path):
    root = demo_dir(tmp_path / "demo")
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "synthetic_tiny.csv").write_text(
        "arch,seed,miou\n1-1,0,70\n1-1,1,72\n2-4,0,90\n2-4,1,91\n2-6,0,92\n2-6,1,93\n"
    )
    text = demo_summary(root, tables)
    assert "picked dilations 2-4 (block4.b1=2 block5.b1=4), field of view 239 px" in text
    assert "held-out mIoU with the search's shared weights: 71.25 (the best score among the 2" in text
    assert "600 steps: validation mIoU 88.50" in text
    assert "2-4 ranks 2 of 3: 90.50 mIoU (best 2-6: 92.50; all rates 1: 71.00)" in text
    assert f"the retrained net   {root / 'retrain' / 'checkpoints' / 'best.pt'}" in text
    assert f"tensorboard --logdir {root}" in text


def test_without_a_table_or_a_retraining_it_says_what_it_knows(tmp_path):
    root = demo_dir(tmp_path / "demo", with_retrain=False)
    text = demo_summary(root, tmp_path / "no-tables")
    assert "picked dilations 2-4" in text and "validation mIoU" not in text and "ground truth" not in text
    with pytest.raises(UserError, match=r"no search/arch\.json; run `make demo`"):
        demo_summary(tmp_path / "elsewhere")


def summary_command(path):
    return subprocess.run(
        [sys.executable, "-m", "dilnas.demo_summary", str(path)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_module_prints_it_and_refuses_a_wrong_directory_in_one_line(tmp_path):
    ok = summary_command(demo_dir(tmp_path / "demo"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("dilnas demo: the search picked dilations 2-4")
    bad = summary_command(tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no search/arch.json" in bad.stderr
