"""`cplitool bench` (dense vs pruned latency) and `cplitool report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cplitool.cli.common import JsonOpt, NoWaitOpt, out, print_json, wait_for_lock
from cplitool.cli.options import ForceOpt, ShapeOpt, parse_shape, within_recipe_limits
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.paths import check_output, check_overwrite
from cplitool.toolchain.recipe.sections import BenchSection

RunArg = Annotated[
    str | None, typer.Argument(help="recipe, run directory, or nothing for runs/latest", show_default=False)
]


def show_warnings(measurements: list[dict[str, Any]]) -> None:
    """bench.json's trtexec warnings; the per-iteration "unstable" ones summed up in one line, since on a CPU a
    few preempted iterations trip them everywhere while the medians and round spreads in the table hold."""
    jitter = [m for m in measurements if any(w.startswith("unstable") for w in m["warnings"])]
    for m in measurements:
        for w in m["warnings"]:
            if not w.startswith("unstable"):
                out.print(f"[yellow]warning[/yellow] {m['backend']} {m['precision']} b{m['batch']} {m['model']}: {w}")
    if jitter:
        worst = max(100 * m[f"{m['primary_metric']}_ms"]["cv"] for m in jitter)
        out.print(
            f"note: per-iteration times vary by more than trtexec's 1% (coefficient of variation up to {worst:.0f}%) "
            f"in {len(jitter)} of {len(measurements)} measurements (bench.json warnings); the table's medians "
            "and round spreads are what to read",
            highlight=False,
        )


FilesOrRunArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="recipe or run directory (nothing: runs/latest); or one or two model files (.onnx, or TensorRT "
        ".plan/.engine with their sidecar): two are compared as dense (first) and pruned (second)",
        show_default=False,
    ),
]


def bench(
    refs: FilesOrRunArg = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="batch size, repeatable")] = None,
    backend: Annotated[
        list[str] | None, typer.Option(help="torch, onnxruntime or tensorrt, repeatable (default: recipe)")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: recipe bench/run threads)")] = None,
    repeats: Annotated[int | None, typer.Option(help="interleaved dense/pruned rounds (default: recipe)")] = None,
    duration: Annotated[
        float | None, typer.Option(help="minimum timed seconds per model and batch (default: recipe)")
    ] = None,
    trace: Annotated[bool, typer.Option("--trace", help="also write bench_trace.json, one row per iteration")] = False,
    input_shape: ShapeOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="model files: also write the results to this JSON (merged into it)"),
    ] = None,
    force: ForceOpt = False,
    all_rows: Annotated[
        bool, typer.Option("--all-rows", help="also show the rows of earlier benches kept in bench.json")
    ] = False,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Time the run's dense and pruned models side by side on every available backend (trtexec-style), or
    model files directly: `cplitool bench dense.onnx pruned.onnx`."""
    from cplitool.deploy.bench.files import bench_files, is_model_file
    from cplitool.deploy.bench.results import latest
    from cplitool.deploy.bench.table import bench_table

    cfg = BenchSection()
    within_recipe_limits(batch, cfg, "batches", "--batch")
    within_recipe_limits(threads, cfg, "threads", "--threads")
    within_recipe_limits(repeats, cfg, "repeats", "--repeats")
    within_recipe_limits(duration, cfg, "min_duration_s", "--duration")
    refs = refs or []
    files = [r for r in refs if is_model_file(r)]
    if files:
        if len(files) != len(refs) or backend or trace:
            raise UsageError(
                "bench: model files take no recipe, run directory, --backend or --trace: ONNX files run on "
                "ONNX Runtime, engines on TensorRT"
            )
        if output:
            check_output(output, files, "--output")
            check_overwrite(output, force, "--output")
        doc = bench_files(files, batch, threads, repeats, duration, parse_shape(input_shape), output)
        where = output
    else:
        if len(refs) > 1 or input_shape or output:
            raise UsageError(
                "bench: give one recipe or run directory; --input-shape and --output are for model files "
                f"(.onnx, .plan, .engine), got {' '.join(refs)}"
            )
        from cplitool.deploy.bench.stage import bench_stage
        from cplitool.toolchain.rundir import RunDir

        wait_for_lock(no_wait)
        run = RunDir.resolve(refs[0] if refs else None)
        doc = bench_stage(run.recipe(), run, batch, backend, threads, trace or None, repeats, duration)
        where = run.file("bench.json")
    if as_json:
        print_json(doc)
        if doc.get("failed"):
            raise typer.Exit(1)
        return
    shown, hidden = (doc, 0) if all_rows else latest(doc)
    out.print(bench_table(shown))
    show_warnings(shown["measurements"])
    if hidden:
        out.print(
            f"not shown: {hidden} rows of earlier benches kept in {where} (--all-rows shows them)", highlight=False
        )
    if where:
        out.print(f"results: {where}", highlight=False)
    if doc.get("failed"):
        saved = f" and in {where}" if where else ""
        raise CplitoolError(f"{len(doc['failed'])} bench target(s) failed (reasons above{saved})")


def report(run_ref: RunArg = None, no_wait: NoWaitOpt = False) -> None:
    """Write <run>/report/report.md with plots: accuracy against MACs and against latency, latency against
    batch with its spread, per-layer widths; exit 2 when the run has nothing to report yet."""
    from cplitool.deploy.report import write_report
    from cplitool.toolchain.rundir import RunDir

    wait_for_lock(no_wait)
    out.print(f"report: {write_report(RunDir.resolve(run_ref))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("report")(report)
