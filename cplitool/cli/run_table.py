"""The table `cplitool run` ends with: dense versus pruned (and fine-tuned) top-1, MACs, parameters and
ONNX Runtime CPU latency per batch size, each latency with its p10-p90 over the interleaved rounds, and a
last row with the pruned/dense latency ratio and its interval beside the MACs ratio ("unstable" where the
spread is wider than 10%). Rows come from cplitool.deploy.report (artifacts counted, accuracies as the stages
recorded them) and latencies from bench.json; what was not produced reads "n/a" with the reason
underneath, never a guess. A command module, since it reads deploy's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir

LATENCY = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32"}


@dataclass
class Summary:
    rows: list[dict[str, Any]]  # model, top1, macs, params, path, latency_ms {batch: {median, p10, p90, rounds}}
    batches: list[int]
    notes: list[str] = field(default_factory=list)
    ratio: dict[str, Any] = field(default_factory=dict)  # model, macs, latency {batch: {median, p10, p90, ...}}


def ort_rows(bench: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """bench.json's ONNX Runtime CPU fp32 rows of `key` (measurements or comparisons) at its latest threads."""
    if not bench:
        return []
    threads = bench.get("settings", {}).get("threads")
    return [
        r
        for r in bench.get(key, [])
        if r.get("status", "ok") == "ok"
        and all(r.get(k) == v for k, v in LATENCY.items())
        and r.get("threads") in (threads, None)
    ]


def ort_latencies(bench: dict[str, Any] | None) -> dict[tuple[str, int], dict[str, Any]]:
    """(artifact name, batch) -> median latency (ms) with its p10-p90 over rounds, ONNX Runtime CPU fp32."""
    from cplitool.deploy.bench.spread import latency_interval

    names = {m: v.get("artifact", m) for m, v in (bench or {}).get("models", {}).items()}  # pruned: maybe finetuned
    return {
        (names.get(m["model"], m["model"]), int(m["batch"])): latency_interval(m).to_dict()
        for m in ort_rows(bench, "measurements")
    }


def ort_ratios(bench: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """batch -> pruned/dense latency ratio with the p10-p90 of its paired per-round ratios."""
    from cplitool.deploy.bench.spread import ratio_interval

    return {int(c["batch"]): ratio_interval(c).to_dict() for c in ort_rows(bench, "comparisons")}


def summarize(recipe: Recipe, run: RunDir) -> Summary:
    from cplitool.deploy.report import compared_rows, load_bench, model_rows

    rows, _ = model_rows(recipe, run)
    compared = compared_rows(run)
    rows += compared
    bench = load_bench(run)
    latency = ort_latencies(bench)
    batches = list(recipe.bench.batches)
    notes = ["pruned: before fine-tuning; finetuned: after distillation fine-tuning; n: validation images"]
    for r in rows:
        r["latency_ms"] = {b: latency[(r["model"], b)] for b in batches if (r["model"], b) in latency}
        if recipe.data.name == "synthetic":
            r["top1"] = None
    ratio = ratio_row(bench, rows, batches)
    if compared:
        names = ", ".join(r["model"] for r in compared)
        notes.append(f"{names}: the same MACs target with prune.compare's method, before fine-tuning (not benched)")
    if ratio:
        notes.append(
            "under each latency: p10-p90 of the per-round medians and the throughput at the median (images/s); "
            "last row: pruned/dense latency ratio with the p10-p90 of its paired per-round ratios; unstable: a "
            "spread wider than 10% of its median"
        )
    if recipe.data.name == "synthetic":
        notes.append("top-1: n/a, the data are synthetic (random labels), so no accuracy is claimed")
    if not latency:
        notes.append("latency: n/a, bench.json holds no ONNX Runtime CPU fp32 measurement (bench stage not run)")
    elif any(not r["latency_ms"] for r in rows if r not in compared):
        notes.append("latency: measured for the dense model and the latest pruned one (fine-tuned when done)")
    if not any(r["model"] != "dense" for r in rows):
        notes.append("pruned: n/a, the prune stage has not produced a model")
    return Summary(rows, batches, notes, ratio)


def ratio_row(bench: dict[str, Any] | None, rows: list[dict[str, Any]], batches: list[int]) -> dict[str, Any]:
    """The benched pruned model's name, its MACs over the dense MACs, and the latency ratio per batch."""
    ratios = ort_ratios(bench)
    if not bench or not ratios:
        return {}
    pruned = bench.get("models", {}).get("pruned", {}).get("artifact", "pruned")
    macs = {r["model"]: r["macs"] for r in rows}
    share = macs[pruned] / macs["dense"] if macs.get("dense") and pruned in macs else None
    return {"model": pruned, "macs": share, "latency": {b: ratios[b] for b in batches if b in ratios}}


def top1_cell(row: dict[str, Any]) -> str:
    """The top-1 with the number of images it was measured on underneath ("n=360", one word)."""
    if row["top1"] is None:
        return "n/a"
    return f"{row['top1']:.2f}" + (f"\nn={row['top1_images']:,}" if row.get("top1_images") else "")


def render(summary: Summary, title: str) -> Any:
    from rich.table import Table

    from cplitool.deploy.bench.spread import Interval
    from cplitool.deploy.bench.table import cell
    from cplitool.toolchain.tables import fitted

    def latency(values: dict[int, dict[str, Any]], b: int, rate: bool = True) -> str:
        v = values.get(b)
        return cell(Interval(v["median"], v["p10"], v["p90"], v["rounds"]), b if rate else None) if v else "n/a"

    table = Table(title=title, caption="\n".join(summary.notes) or None)
    for col in ("model", "top-1 %", "MACs (M)", "params (M)", *(f"ORT CPU b{b} (ms)" for b in summary.batches)):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in summary.rows:
        table.add_row(
            r["model"],
            top1_cell(r),
            f"{r['macs'] / 1e6:,.2f}",
            f"{r['params'] / 1e6:,.3f}",
            *(latency(r["latency_ms"], b) for b in summary.batches),
        )
    macs = summary.ratio.get("macs")
    if summary.ratio:
        table.add_section()
        table.add_row(
            f"{summary.ratio['model']} / dense",
            "",
            f"{macs:.2f}" if macs is not None else "n/a",
            "",
            *(latency(summary.ratio["latency"], b, rate=False) for b in summary.batches),
        )
    return fitted(table)
