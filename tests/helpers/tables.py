"""A made-up ground-truth table of synthetic_tiny (its 10 gapless architectures, two seeds each) and the
overrides of a search quick enough for the ranking tests."""

from __future__ import annotations

from pathlib import Path

QUICK = ["data.image_size=64", "data.context_distance=8", "data.train_samples=48", "data.num_workers=0"]
# synthetic_tiny's 10 gapless architectures, two seeds each (made-up mIoUs: the test checks the arithmetic)
TABLE = [
    ("1-1", 50.0, 52.0),
    ("1-2", 60.0, 58.0),
    ("1-3", 61.0, 64.0),
    ("1-4", 70.0, 66.0),
    ("2-1", 55.0, 57.0),
    ("2-2", 68.0, 69.0),
    ("2-3", 75.0, 74.0),
    ("2-4", 73.0, 76.0),
    ("2-5", 71.0, 70.0),
    ("2-6", 72.0, 65.0),
]


def write_table(path: Path, rows=TABLE) -> Path:
    lines = ["arch,seed,miou"] + [
        f"{arch},{seed},{value}" for arch, *values in rows for seed, value in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
