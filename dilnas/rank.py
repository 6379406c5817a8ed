"""``dilnas-rank run_dir=RUN ground_truth=TABLE.csv``: how well a search run's supernet orders the architectures
of a ground-truth table (Kendall tau, Spearman rho, top-5 overlap, bootstrap intervals, the table's own ceiling),
written to ``RUN/rank.json`` and printed as a table. The diagnostics are ``dilnas.analysis.ranking``.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from dilnas.analysis.ranking import rank_run
from dilnas.cli import hydra_command, typed_config
from dilnas.spec.tool_options import RankConfig
from dilnas.utils.tables import format_table


def run(cfg: DictConfig) -> None:
    def progress(done: int, total: int, arch: str, miou: float) -> None:
        print(f"dilnas-rank: {done}/{total} {arch}: held-out mIoU {miou:.2f}", file=sys.stderr, flush=True)

    out, report = rank_run(typed_config(cfg, RankConfig), progress)
    print(format_table(*rank_table(report)))
    ceiling = report["ceiling"]
    print(
        f"ceiling: Kendall tau {ceiling['kendall']:.3f} between seed 0's and seed 1's rankings "
        f"({ceiling['archs']} architectures with both); {len(report['archs'])} architectures scored; wrote {out}"
    )


def rank_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per score, its agreement with the table's means and the 90% intervals."""
    header = [
        "score",
        "kendall tau",
        "90% interval",
        "spearman",
        "90% interval",
        f"top-{report['heldout']['top']}",
    ]
    rows = []
    for name, label in (
        ("heldout", "held-out mIoU (supernet weights)"),
        ("heldout_loss", "held-out cross-entropy (lower first)"),
        ("log_prob", "sum of log-probabilities"),
    ):
        entry = report[name]
        rows.append(
            [
                label,
                f"{entry['kendall']:.3f}",
                "[{:.3f}, {:.3f}]".format(*entry["kendall_interval"]),
                f"{entry['spearman']:.3f}",
                "[{:.3f}, {:.3f}]".format(*entry["spearman_interval"]),
                f"{entry['top_overlap']:.2f}",
            ]
        )
    return header, rows


EXAMPLES = (
    "dilnas-rank run_dir=runs/search/DATE ground_truth=experiments/ground_truth/synthetic_deep.csv",
    "dilnas-rank run_dir=runs/search/DATE ground_truth=TABLE.csv checkpoint=runs/search/DATE/checkpoints/best.pt",
)
main = hydra_command("dilnas-rank", "rank", run, EXAMPLES)

if __name__ == "__main__":
    main()
