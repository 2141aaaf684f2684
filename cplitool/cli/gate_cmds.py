"""`cplitool regress` (compare a bench file with a baseline), `cplitool gate` (the CI latency gate) and
`cplitool baseline` (a measured baseline from several bench files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cplitool.cli.common import JsonOpt, out, print_json
from cplitool.cli.options import ForceOpt
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.tables import fitted

GATE_BASELINE = Path("deploy/baselines/cpu.json")
ToleranceOpt = Annotated[
    str | None,
    typer.Option(
        help="allowed slowdown, e.g. 5% or 0.05 (default: recipe regress.tolerance, else the measured baseline's, "
        "else 2 x the two files' combined spread, at least 5%)"
    ),
]
MultipleOpt = Annotated[float, typer.Option(min=0.0, help="tolerance = this multiple of the run-to-run spread")]


def regress_table(report: Any, baseline: Path) -> Table:
    table = Table(title=f"latency against {baseline}")
    for col in ("measurement", "metric", "base", "now", "Δ", "limit"):  # short headers: 80 columns when piped
        table.add_column(col, justify="left" if col in ("measurement", "metric") else "right")
    table.add_column("verdict", min_width=9)
    for r in report.rows:
        table.add_row(
            r.key,
            r.metric,
            f"{r.baseline:.4f} ± {100 * r.baseline_spread:.1f}%",
            f"{r.current:.4f} ± {100 * r.current_spread:.1f}%",
            f"{100 * r.change:+.1f}%",
            f"{r.limit:.4f} (+{100 * r.tolerance:.1f}%)",
            "[red]REGRESSED[/red]" if r.regressed else "[green]ok[/green]",
        )
    return table


def report_json(report: Any) -> dict[str, Any]:
    return {
        "rows": [{**vars(r), "limit": r.limit, "change": r.change, "regressed": r.regressed} for r in report.rows],
        "missing": report.missing,
        "warnings": report.warnings,
    }


def show(report: Any, baseline: Path, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Print the comparison; exit 1 (CplitoolError) with both figures and their spreads when it regressed."""
    if as_json:
        print_json({**report_json(report), **(extra or {})})
    else:
        out.print(fitted(regress_table(report, baseline)))
        for key in report.missing:
            out.print(f"[yellow]not measured now[/yellow] (in the baseline): {key}", highlight=False, soft_wrap=True)
        for warning in report.warnings:
            out.print(f"[yellow]warning[/yellow]: {warning}", highlight=False, soft_wrap=True)
    if report.regressed:
        raise CplitoolError(report.failure())


def regress(
    current: Annotated[Path, typer.Argument(help="bench.json to check", show_default=False)],
    baseline: Annotated[
        Path | None,
        typer.Option(help="baseline: a bench JSON or a measured baseline (default: the run recipe's regress.baseline)"),
    ] = None,
    tolerance: ToleranceOpt = None,
    no_baseline_ok: Annotated[
        bool, typer.Option("--no-baseline-ok", help="exit 0 saying 'no baseline' when the baseline file is absent")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Exit 1 when latency regressed beyond the tolerance, 2 when the files cannot be compared, else 0."""
    from cplitool.deploy.regress import parse_tolerance, regress_settings
    from cplitool.deploy.regress import regress as compare

    baseline, tol = regress_settings(current, baseline, None if tolerance is None else parse_tolerance(tolerance))
    if no_baseline_ok and not baseline.exists():
        out.print(
            f"no baseline: {baseline} does not exist, so nothing is gated; commit one made from measured runs "
            f"(`cplitool baseline {baseline} bench-1.json bench-2.json bench-3.json`)",
            highlight=False,
            soft_wrap=True,
        )
        return
    show(compare(current, baseline, tol), baseline, as_json)


def gate(
    baseline: Annotated[Path, typer.Option(help="measured baseline to compare with")] = GATE_BASELINE,
    tolerance: Annotated[
        str | None, typer.Option(help="allowed slowdown, e.g. 5%, instead of the measured baseline's tolerance")
    ] = None,
    record: Annotated[
        int,
        typer.Option(
            min=0, help="instead of gating, measure this many times and write BASELINE from them (at least 2)"
        ),
    ] = 0,
    multiple: MultipleOpt = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """The CI latency gate: VGG-16 (CIFAR) dense and pruned to half its MACs by cplitool, timed interleaved on
    ONNX Runtime CPU with one thread; their CPU-time ratio against the measured baseline (exit 1 on a
    regression, measured once more first when the machine is loaded)."""
    from cplitool.deploy.gate import run as gate_run
    from cplitool.deploy.gate.measure import measure_pair
    from cplitool.deploy.gate.pair import prepare_pair
    from cplitool.deploy.regress import load_doc, parse_tolerance
    from cplitool.toolchain.io import write_json
    from cplitool.toolchain.paths import check_output

    if record == 1:
        raise UsageError("--record 1: a measured baseline needs at least 2 measurements to measure their spread")
    # The baseline is read (or, with --record, its path checked) before the pair is pruned and exported.
    if record:
        check_output(baseline, [], "--baseline")
    known = {} if record else load_doc(baseline)
    setup = gate_run.GATE
    pair, built = prepare_pair(setup.spec, setup.pairs)
    out.print(
        f"gate pair {pair.folder} ({'prepared now' if built else 'cached'}): {pair.spec.arch}, MACs "
        f"{pair.macs['dense'] / 1e6:.1f} M -> {pair.macs['pruned'] / 1e6:.1f} M ({pair.macs_ratio:.3f})",
        highlight=False,
        soft_wrap=True,
    )

    def measure() -> dict[str, Any]:
        doc = measure_pair(pair, setup.timing)
        write_json(setup.bench, doc)
        return doc

    if record:
        path = write_json(baseline, gate_run.record_baseline(measure, record, multiple))
        out.print(f"baseline from {record} measurements: {path}", highlight=False, soft_wrap=True)
        return
    tol = None if tolerance is None else parse_tolerance(tolerance)
    outcome = gate_run.run_gate(measure, known, tol, (str(setup.bench), str(baseline)))
    for note in outcome.notes:
        out.print(f"[yellow]gate:[/yellow] {note}", highlight=False, soft_wrap=True)
    show(outcome.report, baseline, as_json, {"notes": outcome.notes, "bench": str(setup.bench)})


def baseline(
    output: Annotated[Path, typer.Argument(help="baseline JSON to write", show_default=False)],
    benches: Annotated[list[Path], typer.Argument(help="bench.json files of one setup (2 or more)")],
    multiple: MultipleOpt = 5.0,
    force: ForceOpt = False,
) -> None:
    """Write a measured baseline: each figure's median over the bench files, its run-to-run spread, and a
    tolerance of MULTIPLE x spread."""
    from cplitool.deploy.regress import load_bench, make_baseline
    from cplitool.toolchain.io import write_json
    from cplitool.toolchain.paths import check_output, check_overwrite

    check_output(output, benches, "baseline")
    check_overwrite(output, force, "baseline")
    doc = make_baseline([load_bench(p) for p in benches], multiple)
    write_json(output, doc)
    for key, f in doc["figures"].items():
        out.print(
            f"{key}: {f['metric']} {f['value']:.4f} ± {100 * f['spread']:.2f}% -> tolerance {100 * f['tolerance']:.1f}%",
            highlight=False,
            soft_wrap=True,
        )
    out.print(f"baseline: {output}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("regress")(regress)
    app.command("gate")(gate)
    app.command("baseline")(baseline)
