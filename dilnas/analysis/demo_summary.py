"""What ``make demo`` found, in words a newcomer reads: the dilations the search picked, how good they are (the
held-out score, the retrained network's validation mIoU, and, in a checkout, the pick's rank in the space's
shipped ground truth), and where every output is.

The demo directory holds ``search/`` (the search run), ``arch.json`` (the exported architecture) and
``retrain/`` (the retrained network), as the Makefile's ``demo`` target writes them.
"""

from __future__ import annotations

from pathlib import Path

from dilnas.analysis.ground_truth import final_eval
from dilnas.analysis.ground_truth_table import read_table
from dilnas.spec.arch import load_arch
from dilnas.spec.gapless import rates_key, rates_text
from dilnas.train.run_dir import RunDir
from dilnas.utils.errors import UserError

# The shipped ground truth of a space, where the checkout has it (experiments/ground_truth/<space>.csv).
GROUND_TRUTH_DIR = Path(__file__).resolve().parents[2] / "experiments" / "ground_truth"


def demo_summary(demo_dir: str | Path, ground_truth_dir: Path = GROUND_TRUTH_DIR) -> str:
    """The closing lines of ``make demo`` for ``demo_dir``."""
    root = Path(demo_dir)
    search, retrain = RunDir(root / "search"), RunDir(root / "retrain")
    if not search.arch.is_file():
        raise UserError(f"{root}: no search/arch.json; run `make demo` to make a demo directory")
    arch = load_arch(search.arch)
    recorded = arch.search or {}
    branches = recorded.get("branches", {})
    keys, rates = list(branches), [int(branch["choice"]) for branch in branches.values()]
    picked = rates_key(rates)
    lines = [
        f"dilnas demo: the search picked dilations {rates_text(keys, rates)}, "
        f"field of view {arch.field_of_view} px."
    ]
    selection = recorded.get("selection") or []
    chosen = next((entry for entry in selection if list(entry["rates"]) == rates), None)
    if chosen is not None:
        lines.append(
            f"  held-out mIoU with the search's shared weights: {float(chosen['miou']):.2f} "
            f"(the best score among the {len(selection)} most probable networks)"
        )
    final = final_eval(retrain.metrics)
    if final is not None:
        lines.append(
            f"  retrained from the search's weights for {final['step']} steps: "
            f"validation mIoU {float(final['val/miou']):.2f}"
        )
    table_path = ground_truth_dir / f"{recorded.get('space', '')}.csv"
    if keys and table_path.is_file():
        table = read_table(table_path, len(keys))
        means = {key: result.mean for key, result in table.items()}
        ordered = sorted(means, key=lambda key: means[key], reverse=True)
        if picked in means:
            baseline = rates_key([1] * len(keys))
            versus = f"; all rates 1: {means[baseline]:.2f}" if baseline in means else ""
            lines.append(
                f"  in the shipped ground truth ({table_path.name}: every network retrained from scratch, "
                f"mean over seeds) {picked} ranks {ordered.index(picked) + 1} of {len(ordered)}: "
                f"{means[picked]:.2f} mIoU (best {ordered[0]}: {means[ordered[0]]:.2f}{versus})"
            )
    lines += [
        "where everything is:",
        f"  the search          {search.path}  (dilnas-plot run_dir={search.path} draws its rates)",
        f"  the architecture    {root / 'arch.json'}",
        f"  the retrained net   {retrain.best}",
        f"  TensorBoard         tensorboard --logdir {root}",
    ]
    return "\n".join(lines)
