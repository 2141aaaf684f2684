"""`cplitool prune`: CPLI (or cp, l1, random) channel pruning of the run's dense model."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cplitool.cli.common import JsonOpt, NoWaitOpt, RecipeArg, SetOpt, load, out, print_json, wait_for_lock
from cplitool.toolchain.tables import OneLine, one_line


def _num(v: float | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def _arrow(before: Any, after: Any, fmt: str = "") -> str:
    """ "64→48" without spaces, so a cell is one word and the row one line."""
    if before is None:
        return ""
    return format(before, fmt) if before == after else f"{format(before, fmt)}→{format(after, fmt)}"


# Columns in the order shown, and how long each survives a narrow terminal (higher: dropped later).
COLUMNS = {"layer": 9, "in": 1, "out": 8, "keep": 6, "MACs (M)": 5, "error": 7, "s": 2}


def layer_table(report: dict[str, Any]) -> OneLine:
    """The per-layer table of a prune report, one line per layer: channels, keep ratio, MACs,
    reconstruction error, time; what the terminal cannot hold is left to prune_report.json."""
    table = Table(
        title=(
            f"{report['method']}: MACs {report['macs_before'] / 1e6:,.2f} M -> {report['macs_after'] / 1e6:,.2f} M "
            f"(keep {report['macs_keep']:.3f}, target {report['target_macs_keep']}), input "
            f"{'x'.join(map(str, report['input_shape']))}"
        )
    )
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in report["layers"]:
        seconds = sum(r[k] for k in ("capture_s", "gram_s", "solve_s")) if "solve_s" in r else None
        table.add_row(
            r["layer"],
            _arrow(r["in_before"], r["in_after"]),
            _arrow(r["out_before"], r["out_after"]),
            f"{r['keep']:.3f}",
            _arrow(r["macs_before"] / 1e6, r["macs_after"] / 1e6, ",.3f"),
            _arrow(r.get("err_before"), r.get("err_after"), ".4f"),
            _num(seconds, ".1f"),
        )
    return one_line(table, list(COLUMNS.values()), "prune_report.json")


def prune(recipe: RecipeArg, set_: SetOpt = None, as_json: JsonOpt = False, no_wait: NoWaitOpt = False) -> None:
    """Prune RECIPE's dense model to prune.macs_keep of its MACs with prune.method; writes pruned.pt and
    prune_report.json into the run directory and prints the per-layer table."""
    from cplitool.toolchain.prune.stage import prune_stage

    wait_for_lock(no_wait)
    report = prune_stage(load(recipe, set_))
    if as_json:
        print_json(report)
        return
    out.print(layer_table(report))
    out.print(report["meaning"], highlight=False)
    free = report.get("data_free_groups", [])
    if free:
        out.print(
            f"{len(free)} groups chosen without data ({free[0]['criterion']}: {free[0]['why']}): "
            + ", ".join(g["group"] for g in free),
            highlight=False,
            markup=False,
        )
    s = report["seconds"]
    m = report["metrics"]
    out.print(
        f"time: capture {s['capture']:.1f} s, Gram {s['gram']:.1f} s, solve {s['solve']:.1f} s"
        + (f" (refit {s['refit']:.1f})" if "refit" in s else "")
        + "; "
        f"params {m['params_before']:,} -> {m['params_after']:,}; top-1 before fine-tuning {m['top1_before_finetune']:.2f}%"
    )


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
