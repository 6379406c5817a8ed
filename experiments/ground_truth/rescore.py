"""Held-out selection after the fact: score the shortlist of finished search runs as ``search.select_top`` does at
the end of a search (for runs made before it existed), one CSV row per shortlisted architecture.

    python experiments/ground_truth/rescore.py OUT.csv [--top 8] RUN_DIR [RUN_DIR ...]

For each run: its ``last.pt`` supernet, its probabilities, the rule's pick (the run's ``arch.json``) and the next
most probable gapless architectures, ``--top`` in all (``dilnas.spec.derivation.shortlist``); each becomes a
network with the supernet's weights, its BatchNorm statistics re-estimated on the same training images as the
search's gap probe, and is scored on the run's held-out split. Columns: run, rank (0: the rule's pick), arch
(rates in branch order), heldout_miou, kept (1 for the best score: what the search would now write).
Same computation as ``SearchTrainer.measure`` at a search's last evaluation, on one CPU thread.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dilnas.models.supernet import SuperNet
from dilnas.spec.arch import load_arch
from dilnas.spec.derivation import shortlist
from dilnas.spec.gapless import rates_key
from dilnas.spec.options import Relaxation, SearchRunConfig
from dilnas.spec.space import load_space
from dilnas.train.run_dir import RunDir
from dilnas.train.search_run import search_data
from dilnas.train.selection import calibration_batches, score_architectures, selection_of
from dilnas.utils.checkpoints import load_checkpoint

COLUMNS = ("run", "rank", "arch", "heldout_miou", "kept")


def rescore(run_dir: Path, top: int) -> list[dict[str, object]]:
    run = RunDir(run_dir)
    config = run.read_config(SearchRunConfig)  # settings added since the run take their defaults
    space = load_space(run.space)
    data = search_data(config)
    supernet = SuperNet(space, Relaxation.softmax, config.search.shared_kernel)
    supernet.load_state_dict(load_checkpoint(run.last)["model"])
    searched = load_arch(run.arch).search or {}
    probs = [entry["probs"] for entry in searched["branches"].values()]
    pick = [entry["choice"] for entry in searched["branches"].values()]
    batch_size = config.trainer.batch_size
    device = torch.device("cpu")
    batches = calibration_batches(
        data.train_set, config.seed, config.search.gap_bn_batches, batch_size, device
    )
    loader = DataLoader(data.heldout_eval, batch_size=batch_size)
    candidates = shortlist(space, probs, pick, top)
    selection = selection_of(
        score_architectures(supernet, candidates, batches, loader, data.class_names, device)
    )
    return [
        {
            "run": str(run_dir),
            "rank": rank,
            "arch": rates_key(entry.rates),
            "heldout_miou": round(entry.miou, 4),
            "kept": int(entry == selection.best),
        }
        for rank, entry in enumerate(selection.scored)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for run_dir in args.runs:
            started = time.process_time()
            rows = rescore(run_dir, args.top)
            writer.writerows(rows)
            handle.flush()
            kept = next(row["arch"] for row in rows if row["kept"])
            print(
                f"{run_dir}: rule's pick {rows[0]['arch']}, kept {kept} "
                f"({time.process_time() - started:.0f} CPU-s)",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
