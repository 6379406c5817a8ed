"""The camvid_lite ground truth at the protocol's evaluation: every finished cell of a dilnas-grid directory,
its final weights evaluated on CamVid val at native resolution (360x480), as a ground-truth table.

    python experiments/camvid/reevaluate.py GRID_OUT OUT.csv [--data ../shared/data/camvid] [--short-side N] [--again]

Why: the grid's cells were retrained with ``+experiment=camvid_lite`` when its evaluation was at short side 192
(192x256); training never depends on the evaluation (one evaluation, after the last step), so the same weights
evaluated at native resolution are what the preset computes now (``data.eval_short_side: null``). A cell's row
keeps the grid's columns; ``miou`` is the new evaluation and ``cpu_seconds`` adds its CPU time to the
training's. Rows already in OUT.csv (the same architecture, seed and run) are kept as they are and only new
cells are evaluated, so a growing table does not measure its old cells' cost again (CPU time varies with the
machine's load; ``--again`` evaluates every cell). ``experiments/camvid/README.md`` ("How the scale was found") says why native resolution.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dilnas.analysis.ground_truth import collect
from dilnas.analysis.ground_truth_table import read_rows, write_table
from dilnas.analysis.run_evaluation import evaluation_set, final_network
from dilnas.train.trainer import evaluate
from dilnas.utils.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/camvid"))
    parser.add_argument(
        "--short-side", type=int, default=None, help="evaluation short side (default: native)"
    )
    parser.add_argument("--again", action="store_true", help="evaluate every cell, also those in OUT.csv")
    args = parser.parse_args()
    try:  # a table that cannot be read is a one-line error, not a traceback
        previous = [] if args.again or not args.out.is_file() else read_rows(args.out)
    except UserError as error:
        raise SystemExit(f"reevaluate.py: error: {error}") from None
    done = {(r.arch, r.seed, r.run): r for r in previous}
    torch.set_num_threads(1)  # the grid's cells ran on one thread; their cost stays comparable
    rows, kept = [], 0
    for row in collect(args.grid):
        if (row.arch, row.seed, row.run) in done:
            rows.append(done[(row.arch, row.seed, row.run)])
            kept += 1
            continue
        if row.run is None or not (args.grid / row.run / "checkpoints" / "last.pt").is_file():
            raise SystemExit(
                f"{args.grid}: the cell {row.arch} seed {row.seed} has no checkpoint to evaluate"
            )
        run = args.grid / row.run
        val = evaluation_set(run, args.data, args.short_side)
        model = final_network(run)
        start = time.process_time()
        miou = evaluate(
            model, DataLoader(val, batch_size=1), len(val.class_names), torch.device("cpu")
        ).miou()
        spent = time.process_time() - start
        cost = None if row.cpu_seconds is None else round(row.cpu_seconds + spent, 3)
        rows.append(dataclasses.replace(row, miou=round(miou, 4), cpu_seconds=cost))
        print(f"{row.arch} seed {row.seed}: {miou:.2f} (evaluation {spent:.1f} CPU-s)", flush=True)
    write_table(rows, args.out)
    print(f"{args.out}: {len(rows)} rows ({len(rows) - kept} evaluated, {kept} kept)")


if __name__ == "__main__":
    main()
