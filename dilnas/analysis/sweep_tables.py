"""How a sweep summary reads: the per-run and agreement tables (console, Markdown) and the CSV rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def run_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-run table of a summary (rates in the space's branch order); with a ground
    truth, the pick's retrained mIoU, regret and percentile too."""
    headers = ["run", "rates", "fov", "supernet mIoU", "derived mIoU", "gap", "wall s", "cpu s"]
    ranked = "ground_truth" in summary
    if ranked:
        headers += ["pick mIoU", "regret", "percentile"]
    rows = []
    for run in summary["runs"]:
        row = [
            run["run"],
            " ".join(str(rate) for rate in run["rates"].values()),
            str(run["field_of_view"]),
            _number(run["miou_supernet"]),
            _number(run["miou"]),
            _number(run["gap"]),
            _number(run["wall_time_s"], 1),
            _number(run["cpu_seconds"], 0),
        ]
        if ranked:
            row += [_number(run["pick_miou"]), _number(run["regret"]), _number(run["percentile"], 0)]
        rows.append(row)
    return headers, rows


def ground_truth_lines(summary: dict[str, Any]) -> list[str]:
    """The Markdown section that ranks the picks against a ground-truth table (empty without one)."""
    truth = summary.get("ground_truth")
    if truth is None:
        return []
    cost = truth["cpu_seconds"]
    searches = [run["cpu_seconds"] for run in summary["runs"] if run["cpu_seconds"] is not None]
    lines = [
        "## Ground truth",
        "",
        f"Table `{truth['table']}`: {truth['archs']} architectures, the best `{truth['best_arch']}` at "
        f"{truth['best_miou']:.2f} mean mIoU; regret is that minus the pick's mean mIoU (0: the search found "
        "the table's best), percentile the share of the table's architectures at most as good as the pick.",
    ]
    if cost is not None and searches:
        lines.append(
            f"Cost: the table took {cost:.0f} CPU-seconds; a search {sum(searches) / len(searches):.0f} on "
            f"average ({sum(searches) / len(searches) / cost:.1%} of the table)."
        )
    if truth["picks_not_in_table"]:
        lines.append(
            f"Picks not in the table (retrain them into it with dilnas-grid include=...): "
            f"{', '.join(truth['picks_not_in_table'])}."
        )
    return [*lines, ""]


def agreement_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the per-branch agreement table of a summary."""
    headers = ["branch", "most chosen", "runs", "share", "consensus"]
    consensus = summary["consensus"]["rates"]
    rows = [
        [
            key,
            str(vote["rate"]),
            f"{vote['count']}/{sum(vote['counts'])}",
            f"{vote['share']:.3f}",
            str(consensus[key]),
        ]
        for key, vote in summary["agreement"].items()
    ]
    return headers, rows


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(row) for row in rows)])


def markdown(summary: dict[str, Any]) -> str:
    consensus = summary["consensus"]
    lines = [
        f"# Sweep summary: {summary['sweep_dir']}",
        "",
        f"Search space `{summary['space']['name']}` (digest `{summary['space']['digest'][:12]}`), "
        f"{len(summary['runs'])} runs; searchable branches {', '.join(summary['branches'])}.",
        "",
        "## Runs",
        "",
        _markdown_table(*run_table(summary)),
        "",
        "Overrides:",
        "",
        *(f"- `{run['run']}`: `{' '.join(run['overrides']) or '(none)'}`" for run in summary["runs"]),
        "",
        *ground_truth_lines(summary),
        "## Agreement",
        "",
        _markdown_table(*agreement_table(summary)),
        "",
        "## Consensus",
        "",
        f"Rates {' '.join(str(rate) for rate in consensus['rates'].values())}, field of view "
        f"{consensus['field_of_view']} px, the gapless choice with the highest product of vote shares: `{consensus['arch']}`.",
        "",
        consensus_strength(consensus),
        "",
    ]
    return "\n".join(lines)


def runs_csv(runs: Sequence[Any], keys: Sequence[str]) -> str:
    metrics = [
        "miou_supernet",
        "miou",
        "gap",
        "wall_time_s",
        "cpu_seconds",
        "pick_miou",
        "regret",
        "percentile",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "overrides", *keys, "field_of_view", *metrics])
    for run in runs:
        values = [getattr(run, name) for name in metrics]
        writer.writerow(
            [
                run.run,
                " ".join(run.overrides),
                *(run.rates[key] for key in keys),
                run.field_of_view,
                *("" if value is None else value for value in values),
            ]
        )
    return buffer.getvalue()


def consensus_strength(consensus: dict) -> str:
    """How strong the consensus is, in words: how many runs picked it, the product of its vote shares, a tie."""
    tie = (
        " It ties with other architectures at that product; of those, it is the one the runs picked most."
        if consensus["tie"]
        else ""
    )
    return (
        f"Picked by {consensus['picked_by']} of {consensus['runs']} runs; product of its vote shares "
        f"{consensus['vote_product']:.3g}.{tie}"
    )
