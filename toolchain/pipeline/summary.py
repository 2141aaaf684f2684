"""The table `cplitool run` ends with: dense versus pruned (and fine-tuned) accuracy, MACs, parameters and
ONNX Runtime CPU latency per batch size. Every figure comes from the run directory (artifacts, manifest,
bench.json); a figure that was not produced is shown as "n/a" with the reason in the notes, never guessed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from toolchain.counting import count_model
from toolchain.errors import CplitoolError
from toolchain.models import input_shape
from toolchain.recipe import Recipe
from toolchain.rundir import RunDir

MODELS = (("dense", "train"), ("pruned", "prune"), ("finetuned", "finetune"))
LATENCY_BACKEND = "onnxruntime"


@dataclass
class Row:
    model: str  # dense, pruned (before fine-tuning), finetuned
    top1: float | None
    macs: int
    params: int
    latency_ms: dict[int, float] = field(default_factory=dict)  # batch -> median latency


@dataclass
class Summary:
    rows: list[Row]
    batches: list[int]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "rows": [vars(r) for r in self.rows], "notes": self.notes}


def sample_shape(recipe: Recipe) -> tuple[int, ...]:
    """One input as the recipe feeds it (synthetic shape, image_size and clip_len override the default)."""
    if recipe.data.name == "synthetic":
        return tuple(recipe.data.synthetic_shape)
    shape = list(input_shape(recipe.model.name, recipe.model.kwargs))
    if recipe.data.image_size:
        shape[-2:] = [recipe.data.image_size] * 2
    if len(shape) == 4 and recipe.data.name == "video":
        shape[1] = recipe.data.clip_len
    return tuple(shape)


def recorded_top1(run: RunDir, stage: str, info_metrics: dict[str, Any]) -> float | None:
    """Top-1 as the stage recorded it: the artifact's own metrics, else the manifest entry's."""
    for metrics in (info_metrics, (run.stage(stage) or {}).get("metrics", {})):
        for value in (metrics.get("top1"), (metrics.get("best") or {}).get("top1")):
            if isinstance(value, int | float):
                return float(value)
    return None


def bench_latencies(run: RunDir) -> dict[tuple[str, int], float]:
    """(model, batch) -> median latency in ms of the ONNX Runtime CPU fp32 measurements in bench.json."""
    path = run.file("bench.json")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CplitoolError(f"{path}: unreadable ({e})") from None
    out: dict[tuple[str, int], float] = {}
    for m in data.get("measurements", []):
        if m.get("backend") != LATENCY_BACKEND or m.get("precision", "fp32") != "fp32" or m.get("status", "ok") != "ok":
            continue
        if m.get("device", "cpu") != "cpu":
            continue
        out[(m["model"], int(m["batch"]))] = float(m["latency_ms"]["median"])
    return out


def summarize(recipe: Recipe, run: RunDir) -> Summary:
    from toolchain.artifacts import load_artifact, resolve_model

    shape = sample_shape(recipe)
    latency = bench_latencies(run)
    batches = list(recipe.bench.batches)
    rows, notes = [], []
    for label, stage in MODELS:
        path = run.artifact(stage)
        if label == "dense" and recipe.model.checkpoint:
            model, info, _ = resolve_model(recipe, run, "dense")
        elif path is None:
            continue
        else:
            model, info = load_artifact(path)
        count = count_model(model, shape)
        top1 = None if recipe.data.name == "synthetic" else recorded_top1(run, stage, info.metrics)
        lat = {b: latency[(label, b)] for b in batches if (label, b) in latency}
        rows.append(Row(label, top1, count.macs, count.params, lat))
    if recipe.data.name == "synthetic":
        notes.append("top-1: n/a, the data are synthetic (random labels): no accuracy is claimed")
    if not latency:
        notes.append(f"latency: n/a, no {LATENCY_BACKEND} CPU measurement in bench.json (bench stage not run)")
    if not any(r.model != "dense" for r in rows):
        notes.append("pruned: n/a, the prune stage has not produced a model")
    return Summary(rows, batches, notes)


def render(summary: Summary, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, caption="\n".join(summary.notes) or None)
    for col in ("model", "top-1 %", "MACs (M)", "params (M)", *(f"ORT CPU b{b} (ms)" for b in summary.batches)):
        table.add_column(col, justify="left" if col == "model" else "right")
    dense = summary.rows[0] if summary.rows and summary.rows[0].model == "dense" else None
    for r in summary.rows:
        ratio = f" ({r.macs / dense.macs:.0%})" if dense and r is not dense and dense.macs else ""
        table.add_row(
            r.model,
            f"{r.top1:.2f}" if r.top1 is not None else "n/a",
            f"{r.macs / 1e6:,.2f}{ratio}",
            f"{r.params / 1e6:,.3f}",
            *(f"{r.latency_ms[b]:.3f}" if b in r.latency_ms else "n/a" for b in summary.batches),
        )
    return table
