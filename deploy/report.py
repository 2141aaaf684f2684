"""`cplitool report`: a Markdown report of one run with PNG plots (matplotlib, Agg backend).

Every figure is read from the run directory: artifacts (MACs and per-layer widths counted by
toolchain.counting), accuracies the stages recorded, bench.json, and any ablation results. What is
absent is said in the report, never drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploy.bench.stage import pruned_name
from toolchain.artifacts import resolve_model
from toolchain.counting import ModelCount, count_model
from toolchain.data.registry import recipe_input_shape
from toolchain.errors import CplitoolError, UsageError
from toolchain.io import atomic_write
from toolchain.recipe import Recipe
from toolchain.rundir import RunDir

STAGES = {"dense": "train", "pruned": "prune", "finetuned": "finetune"}


def recorded_top1(run: RunDir, which: str, metrics: dict[str, Any]) -> float | None:
    """Top-1 the stage recorded: in the artifact's metrics, else in its manifest entry."""
    entry = (run.stage(STAGES[which]) or {}).get("metrics", {})
    for m in (metrics, entry):
        for v in (m.get("top1"), (m.get("best") or {}).get("top1"), m.get("top1_before_finetune")):
            if isinstance(v, int | float):
                return float(v)
    return None


def model_rows(recipe: Recipe, run: RunDir) -> tuple[list[dict[str, Any]], dict[str, ModelCount]]:
    rows, counts = [], {}
    for which in STAGES:
        try:
            model, info, path = resolve_model(recipe, run, which)
        except UsageError:
            continue
        counts[which] = count_model(model, recipe_input_shape(recipe))
        top1 = recorded_top1(run, which, info.metrics)
        rows.append(
            {
                "model": which,
                "top1": top1,
                "macs": counts[which].macs,
                "params": counts[which].params,
                "path": str(path),
            }
        )
    return rows, counts


def ablation_rows(run: RunDir) -> list[dict[str, Any]]:
    """Rows with method, macs and top1 from any ablation*.json in the run directory."""
    rows = []
    for path in sorted(run.path.glob("ablation*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CplitoolError(f"{path}: unreadable ({e})") from None
        items = doc if isinstance(doc, list) else doc.get("rows") or doc.get("results") or []
        for r in items:
            if (
                isinstance(r, dict)
                and isinstance(r.get("macs"), int | float)
                and isinstance(r.get("top1"), int | float)
            ):
                rows.append({"method": str(r.get("method", path.stem)), "macs": r["macs"], "top1": r["top1"]})
    return rows


def load_bench(run: RunDir) -> dict[str, Any] | None:
    path = run.file("bench.json")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CplitoolError(f"{path}: unreadable ({e})") from None


def save(fig: Any, path: Path) -> str:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120, bbox_inches="tight"))
    return path.name


def plot_accuracy(plt: Any, rows: list[dict[str, Any]], ablation: list[dict[str, Any]], path: Path) -> str | None:
    points = [r for r in rows if r["top1"] is not None]
    if not points and not ablation:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in points:
        ax.scatter(r["macs"] / 1e6, r["top1"], s=60, label=r["model"], zorder=3)
    methods = sorted({a["method"] for a in ablation})
    for method in methods:
        pts = sorted((a["macs"] / 1e6, a["top1"]) for a in ablation if a["method"] == method)
        ax.plot(*zip(*pts, strict=True), marker="o", linestyle="--", label=method)
    ax.set(xlabel="MACs per image (M)", ylabel="top-1 (%)", title="accuracy against MACs")
    ax.grid(alpha=0.3)
    ax.legend()
    name = save(fig, path)
    plt.close(fig)
    return name


def plot_latency(plt: Any, bench: dict[str, Any], path: Path) -> str | None:
    lines: dict[str, list[tuple[int, float]]] = {}
    for m in bench.get("measurements", []):
        label = f"{m['backend']} {m['device']} {m['precision']} {m['variant']} {m['model']}"
        lines.setdefault(label, []).append((m["batch"], m[f"{m['primary_metric']}_ms"]["median"]))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in sorted(lines.items()):
        pts.sort()
        ax.plot(*zip(*pts, strict=True), marker="o", linestyle="--" if label.endswith("dense") else "-", label=label)
    batches = sorted({b for pts in lines.values() for b, _ in pts})
    ax.set(xscale="log", yscale="log", xlabel="batch", ylabel="median latency (ms)", title="latency against batch")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.minorticks_off()
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    name = save(fig, path)
    plt.close(fig)
    return name


def plot_widths(plt: Any, counts: dict[str, ModelCount], pruned: str, path: Path) -> str | None:
    if "dense" not in counts or pruned not in counts:
        return None
    dense = {x.name: x.out_channels for x in counts["dense"].layers}
    after = {x.name: x.out_channels for x in counts[pruned].layers}
    names = [n for n in dense if n in after]
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(names)), 4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [dense[n] for n in names], width=0.4, label="dense")
    ax.bar([x + 0.2 for x in xs], [after[n] for n in names], width=0.4, label=pruned)
    ax.set_xticks(list(xs), names, rotation=70, fontsize=7)
    ax.set(ylabel="output channels", title="per-layer widths before and after pruning")
    ax.legend()
    name = save(fig, path)
    plt.close(fig)
    return name


def markdown(
    run: RunDir, recipe: Recipe, rows: list[dict[str, Any]], bench: dict[str, Any] | None, images: dict[str, str | None]
) -> str:
    lines = [f"# cplitool report: {recipe.run.name}", "", f"Recipe `{recipe.source}`, model `{recipe.model.name}`.", ""]
    lines += ["## Models", "", "| model | top-1 (%) | MACs (M) | params (M) |", "|---|---:|---:|---:|"]
    for r in rows:
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "not recorded"
        lines.append(f"| {r['model']} | {top1} | {r['macs'] / 1e6:,.2f} | {r['params'] / 1e6:,.3f} |")
    sections = (
        ("Accuracy against MACs", "accuracy", "no accuracy recorded in this run"),
        ("Latency against batch", "latency", "no bench results: run `cplitool bench`"),
        ("Per-layer widths", "widths", "needs both the dense and the pruned model: run `cplitool prune`"),
    )
    for title, key, absent in sections:
        lines += ["", f"## {title}", ""]
        lines.append(f"![{title}]({images[key]})" if images[key] else f"_{absent}._")
    if bench:
        lines += [
            "",
            "| backend | device | precision | variant | batch | pruned/dense | spread |",
            "|---|---|---|---|---:|---:|---:|",
        ]
        for c in bench.get("comparisons", []):
            r = c["ratio"]
            lines.append(
                f"| {c['backend']} | {c['device']} | {c['precision']} | {c['variant']} | {c['batch']} "
                f"| {r['median']:.3f} | {r['min']:.3f}-{r['max']:.3f} |"
            )
        for s in bench.get("skipped", []):
            lines.append(f"\n- skipped {s['backend']} ({s['device']}): {s['reason']}")
        env = bench.get("environment", {})
        lines += ["", f"Measured on {env.get('cpu')} ({env.get('threads')} threads), load {env.get('load_average')}."]
    return "\n".join(lines) + "\n"


def write_report(run: RunDir) -> Path:
    """Write <run>/report/report.md and its PNG plots; returns the Markdown file's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipe = run.recipe()
    folder = run.file("report")
    rows, counts = model_rows(recipe, run)
    bench = load_bench(run)
    images = {
        "accuracy": plot_accuracy(plt, rows, ablation_rows(run), folder / "accuracy_macs.png"),
        "latency": plot_latency(plt, bench, folder / "latency_batch.png") if bench else None,
        "widths": plot_widths(plt, counts, pruned_name(run), folder / "widths.png"),
    }
    path = folder / "report.md"
    text = markdown(run, recipe, rows, bench, images)
    return atomic_write(path, lambda p: p.write_text(text))
