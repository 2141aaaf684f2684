"""`cplitool bench` (dense vs pruned latency), `cplitool regress` (the latency gate), `cplitool report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from toolchain.cli.common import JsonOpt, NoWaitOpt, out, print_json, wait_for_lock
from toolchain.errors import CplitoolError

RunArg = Annotated[
    str | None, typer.Argument(help="recipe, run directory, or nothing for runs/latest", show_default=False)
]


def bench_table(doc: dict[str, Any]) -> Table:
    table = Table(title=f"{doc['model']}: dense vs pruned, median of the primary metric (ms)")
    for col in ("backend device variant", "precision", "batch", "dense", "pruned", "pruned/dense", "spread"):
        table.add_column(col, justify="left" if col in ("backend device variant", "precision") else "right")
    rows = {
        (m["backend"], m["device"], m["precision"], m["variant"], m["batch"], m["model"]): m
        for m in doc["measurements"]
    }
    for c in doc["comparisons"]:
        key = (c["backend"], c["device"], c["precision"], c["variant"], c["batch"])
        med = [rows[(*key, m)][f"{rows[(*key, m)]['primary_metric']}_ms"]["median"] for m in ("dense", "pruned")]
        r = c["ratio"]
        table.add_row(
            f"{c['backend']} {c['device']} {c['variant']}",
            c["precision"],
            str(c["batch"]),
            f"{med[0]:.3f}",
            f"{med[1]:.3f}",
            f"{r['median']:.3f}",
            f"{r['min']:.2f}-{r['max']:.2f}",
        )
    return table


def bench(
    run_ref: RunArg = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="batch size, repeatable")] = None,
    backend: Annotated[
        list[str] | None, typer.Option(help="torch, onnxruntime or tensorrt, repeatable (default: recipe)")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: recipe bench/run threads)")] = None,
    repeats: Annotated[
        int | None, typer.Option(min=1, help="interleaved dense/pruned rounds (default: recipe)")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.0, help="minimum timed seconds per model and batch (default: recipe)")
    ] = None,
    trace: Annotated[bool, typer.Option("--trace", help="also write bench_trace.json, one row per iteration")] = False,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Time the run's dense and pruned models side by side on every available backend (trtexec-style)."""
    from deploy.bench.stage import bench_stage
    from toolchain.rundir import RunDir

    wait_for_lock(no_wait)
    run = RunDir.resolve(run_ref)
    doc = bench_stage(run.recipe(), run, batch, backend, threads, trace or None, repeats, duration)
    if as_json:
        print_json(doc)
        if doc.get("failed"):
            raise typer.Exit(1)
        return
    out.print(bench_table(doc))
    for m in doc["measurements"]:
        for w in m["warnings"]:
            out.print(f"[yellow]warning[/yellow] {m['backend']} {m['precision']} b{m['batch']} {m['model']}: {w}")
    out.print(f"results: {run.file('bench.json')}", highlight=False)
    if doc.get("failed"):
        raise CplitoolError(f"{len(doc['failed'])} bench target(s) failed (reasons in {run.file('bench.json')})")


def regress(
    current: Annotated[Path, typer.Argument(help="bench.json to check", show_default=False)],
    baseline: Annotated[
        Path | None,
        typer.Option(help="baseline bench JSON, one per device (default: the run recipe's regress.baseline)"),
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option(help="allowed slowdown, e.g. 5% or 0.05 (default: recipe regress.tolerance, else 5%)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exit 1 when latency regressed beyond the tolerance, 2 when the files cannot be compared, else 0."""
    from deploy.regress import parse_tolerance, regress_settings
    from deploy.regress import regress as compare

    baseline, tol = regress_settings(current, baseline, parse_tolerance(tolerance) if tolerance else None)
    report = compare(current, baseline, tol)
    if as_json:
        print_json(
            {
                "tolerance": report.tolerance,
                "rows": [{**vars(r), "change": r.change, "regressed": r.regressed} for r in report.rows],
                "missing": report.missing,
            }
        )
    else:
        table = Table(title=f"latency against {baseline} (tolerance {100 * report.tolerance:.1f}%)")
        for col in ("measurement", "metric", "baseline", "current", "change", "limit", "verdict"):
            table.add_column(col, justify="left" if col in ("measurement", "metric", "verdict") else "right")
        for r in report.rows:
            verdict = "[red]REGRESSED[/red]" if r.regressed else "[green]ok[/green]"
            table.add_row(
                r.key,
                r.metric,
                f"{r.baseline:.4f}",
                f"{r.current:.4f}",
                f"{100 * r.change:+.1f}%",
                f"{r.limit:.4f}",
                verdict,
            )
        out.print(table)
        for key in report.missing:
            out.print(f"[yellow]not measured now[/yellow] (in the baseline): {key}", highlight=False)
    if report.regressed:
        raise CplitoolError(
            f"latency regressed beyond {100 * report.tolerance:.1f}% in {len(report.regressed)} of {len(report.rows)} comparisons"
        )


def report(run_ref: RunArg = None, no_wait: NoWaitOpt = False) -> None:
    """Write <run>/report/report.md with plots: accuracy vs MACs, latency vs batch, per-layer widths."""
    from deploy.report import write_report
    from toolchain.rundir import RunDir

    wait_for_lock(no_wait)
    out.print(f"report: {write_report(RunDir.resolve(run_ref))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("regress")(regress)
    app.command("report")(report)
