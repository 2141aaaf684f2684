"""The table `cplitool run` ends with: dense versus pruned (and fine-tuned) top-1, MACs, parameters and
ONNX Runtime CPU latency per batch size. Rows come from deploy.report (artifacts counted, accuracies as
the stages recorded them) and latencies from bench.json; what was not produced reads "n/a" with the reason
underneath, never a guess. A command module, since it reads deploy's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolchain.recipe import Recipe
from toolchain.rundir import RunDir

LATENCY = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32"}


@dataclass
class Summary:
    rows: list[dict[str, Any]]  # model, top1, macs, params, path, latency_ms {batch: median ms}
    batches: list[int]
    notes: list[str] = field(default_factory=list)


def ort_latencies(bench: dict[str, Any] | None) -> dict[tuple[str, int], float]:
    """(artifact name, batch) -> median latency (ms) of the ONNX Runtime CPU fp32 measurements."""
    if not bench:
        return {}
    names = {m: v.get("artifact", m) for m, v in bench.get("models", {}).items()}  # "pruned" may be "finetuned"
    return {
        (names.get(m["model"], m["model"]), int(m["batch"])): float(m["latency_ms"]["median"])
        for m in bench.get("measurements", [])
        if m.get("status") == "ok" and all(m.get(k) == v for k, v in LATENCY.items())
    }


def summarize(recipe: Recipe, run: RunDir) -> Summary:
    from deploy.report import load_bench, model_rows

    rows, _ = model_rows(recipe, run)
    latency = ort_latencies(load_bench(run))
    batches = list(recipe.bench.batches)
    notes = ["pruned: before fine-tuning; finetuned: after distillation fine-tuning"]
    for r in rows:
        r["latency_ms"] = {b: latency[(r["model"], b)] for b in batches if (r["model"], b) in latency}
        if recipe.data.name == "synthetic":
            r["top1"] = None
    if recipe.data.name == "synthetic":
        notes.append("top-1: n/a, the data are synthetic (random labels), so no accuracy is claimed")
    if not latency:
        notes.append("latency: n/a, bench.json holds no ONNX Runtime CPU fp32 measurement (bench stage not run)")
    elif any(not r["latency_ms"] for r in rows):
        notes.append("latency: measured for the dense model and the latest pruned one (fine-tuned when done)")
    if not any(r["model"] != "dense" for r in rows):
        notes.append("pruned: n/a, the prune stage has not produced a model")
    return Summary(rows, batches, notes)


def render(summary: Summary, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, caption="\n".join(summary.notes) or None)
    for col in ("model", "top-1 %", "MACs (M)", "params (M)", *(f"ORT CPU b{b} (ms)" for b in summary.batches)):
        table.add_column(col, justify="left" if col == "model" else "right")
    dense = next((r for r in summary.rows if r["model"] == "dense"), None)
    for r in summary.rows:
        share = f" ({r['macs'] / dense['macs']:.0%})" if dense and r is not dense and dense["macs"] else ""
        table.add_row(
            r["model"],
            f"{r['top1']:.2f}" if r["top1"] is not None else "n/a",
            f"{r['macs'] / 1e6:,.2f}{share}",
            f"{r['params'] / 1e6:,.3f}",
            *(f"{r['latency_ms'][b]:.3f}" if b in r["latency_ms"] else "n/a" for b in summary.batches),
        )
    return table
