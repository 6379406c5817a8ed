"""Fake search runs and sweeps: arch.json files derived from chosen probabilities, with hand-written metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dilnas.spec.arch import save_arch
from dilnas.spec.derivation import derive_arch
from dilnas.spec.space import SEARCH_SPACES_DIR, load_space

SPACE = load_space("synthetic_tiny")
SPACE_FILE = SEARCH_SPACES_DIR / "synthetic_tiny.yaml"


def probs_for(rates: list[int]) -> list[list[float]]:
    """Probabilities whose argmax is ``rates`` (one per searchable branch)."""
    probs = []
    for branch, rate in zip(SPACE.branches, rates, strict=True):
        rest = 0.2 / (len(branch.candidates) - 1)
        probs.append([0.8 if candidate == rate else rest for candidate in branch.candidates])
    return probs


def metrics_lines(miou: float, start: float = 100.0) -> list[dict]:
    return [
        {"step": 10, "time": start, "kind": "train", "epoch": 0, "train/loss": 1.0},
        {"step": 20, "time": start + 30.0, "kind": "eval", "epoch": 0, "search/miou": miou - 10.0},
        {
            "step": 20,
            "time": start + 60.0,
            "kind": "eval",
            "epoch": 1,
            "search/miou": miou,
            "search/miou_supernet": miou + 5.0,
            "search/gap": 5.0,
        },
    ]


def make_run(root: Path, name: str, rates: list[int], seed: int, metrics: bool = True) -> Path:
    """A finished search run of synthetic_tiny at ``root / name`` that picked ``rates`` with ``seed``."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    arch = derive_arch(
        SPACE, probs_for(rates), "argmax", provenance={"seed": seed, "overrides": [f"seed={seed}"]}
    )
    assert [b.dilations[1] for b in arch.blocks[4:6]] == rates
    save_arch(arch, run / "arch.json")
    shutil.copyfile(SPACE_FILE, run / "space.yaml")
    (run / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- search.arch_lr=0.1\n")
    if metrics:
        lines = metrics_lines(60.0 + seed)
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run
