"""`cplitool report`: a Markdown report of one run with PNG plots (matplotlib, Agg backend).

Every figure is read from the run directory: artifacts (MACs and per-layer widths counted by
cplitool.toolchain.counting), accuracies the stages recorded, bench.json, and any ablation results. What is
absent is said in the report, never drawn; a run with nothing at all is a usage error. Every latency
carries its p10-p90 over the interleaved rounds (error bars in the plots, brackets in the tables), and a
spread wider than cplitool.deploy.bench.spread.SPREAD_LIMIT is marked unstable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.results import latest, row_key
from cplitool.deploy.bench.spread import SPREAD_LIMIT, Interval, latency_interval, ratio_interval
from cplitool.deploy.bench.stage import Skip, pruned_name, skip_lines
from cplitool.deploy.bench.table import grouped, number, target_label, target_name
from cplitool.toolchain.accuracy import cached_accuracy, recorded
from cplitool.toolchain.artifacts import resolve_model
from cplitool.toolchain.counting import ModelCount, count_model
from cplitool.toolchain.data.registry import recipe_input_shape
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.io import atomic_write
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir

STAGES = {"dense": "train", "pruned": "prune", "finetuned": "finetune"}


def recorded_accuracy(recipe: Recipe, run: RunDir, which: str, metrics: dict[str, Any], path: Path) -> dict[str, Any]:
    """{top1, images} as recorded: in the artifact's metrics, else its stage's manifest entry; for a dense
    checkpoint that no stage trained, the run's accuracy cache (filled by prune or `cplitool eval`).
    {top1: None, images: 0} when nothing recorded it."""
    entry = (run.stage(STAGES[which]) or {}).get("metrics", {})
    for m in (metrics, entry):
        found = recorded(m)
        if found:
            return found
        if isinstance(m.get("top1_before_finetune"), int | float):  # the pruned model's own evaluation
            return {"top1": float(m["top1_before_finetune"]), "images": int(m.get("top1_images") or 0)}
    if which == "dense":
        cached = cached_accuracy(run, path, recipe.section_hash("data"))
        if cached:
            return {"top1": float(cached["top1"]), "images": int(cached.get("images") or 0)}
    return {"top1": None, "images": 0}


def model_rows(recipe: Recipe, run: RunDir) -> tuple[list[dict[str, Any]], dict[str, ModelCount]]:
    rows, counts = [], {}
    for which in STAGES:
        try:
            model, info, path = resolve_model(recipe, run, which)
        except UsageError:
            continue
        counts[which] = count_model(model, recipe_input_shape(recipe))
        accuracy = recorded_accuracy(recipe, run, which, info.metrics, path)
        rows.append(
            {
                "model": which,
                "top1": accuracy["top1"],
                "top1_images": accuracy["images"],
                "macs": counts[which].macs,
                "params": counts[which].params,
                "path": str(path),
            }
        )
    return rows, counts


def compared_rows(run: RunDir) -> list[dict[str, Any]]:
    """prune.compare's methods as model rows ("l1 pruned"): top-1 before fine-tuning, MACs, parameters."""
    found = ((run.stage("prune") or {}).get("metrics") or {}).get("compare") or []
    return [
        {
            "model": f"{c['method']} pruned",
            "top1": c["top1"],
            "top1_images": c["images"],
            "macs": c["macs"],
            "params": c["params"],
            "path": "",
        }
        for c in found
        if isinstance(c, dict) and {"method", "top1", "images", "macs", "params"} <= set(c)
    ]


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
    """bench.json's latest invocation: the rows measured together under the load its environment records."""
    path = run.file("bench.json")
    if not path.is_file():
        return None
    try:
        doc, hidden = latest(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise CplitoolError(f"{path}: unreadable ({e})") from None
    return {**doc, "hidden_rows": hidden}


def save(fig: Any, path: Path) -> str:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120, bbox_inches="tight"))
    return path.name


STYLE = {  # pruned hollow and larger, so a fine-tuned dot at the same place never hides it
    "dense": {"marker": "o", "s": 70, "color": "tab:blue"},
    "pruned": {"marker": "o", "s": 150, "facecolors": "none", "edgecolors": "tab:orange", "linewidths": 2},
    "finetuned": {"marker": "D", "s": 55, "color": "tab:green"},
}
COMPARED = {"marker": "X", "s": 70, "color": "tab:red"}  # prune.compare's methods ("l1 pruned")
# label offset (points) and alignment: dense right, fine-tuned left, pruned below, so none overlap
LABEL = {"dense": ((8, 6), "left"), "pruned": ((8, -16), "left"), "finetuned": ((-8, 6), "right")}


def top1_limits(values: list[float]) -> tuple[float, float]:
    """A top-1 axis that holds the points with at least a point of margin and never passes 0 or 100."""
    lo, hi = min(values), max(values)
    pad = max(1.0, 0.1 * (hi - lo))
    return max(0.0, lo - pad), min(100.0, hi + pad)


def named(row: dict[str, Any]) -> str:
    """The model's name with its image count, "dense (n=360)": the plot says what each top-1 rests on."""
    return f"{row['model']} (n={row['top1_images']:,})" if row.get("top1_images") else row["model"]


def model_points(ax: Any, points: list[tuple[str, float, float]], xfmt: str) -> None:
    """Scatter (model, x, top-1) points, each labelled with its name, x and top-1."""
    for name, x, top1 in points:
        model = name.split(" (n=")[0]
        ax.scatter(x, top1, zorder=3, label=name, **STYLE.get(model, COMPARED))
        offset, align = LABEL.get(model, ((8, 6), "left"))
        ax.annotate(
            f"{name}\n{format(x, xfmt)}, {top1:.2f}%",
            (x, top1),
            textcoords="offset points",
            xytext=offset,
            ha=align,
            fontsize=8,
        )


def plot_accuracy(plt: Any, rows: list[dict[str, Any]], ablation: list[dict[str, Any]], path: Path) -> str | None:
    points = [(named(r), r["macs"] / 1e6, r["top1"]) for r in rows if r["top1"] is not None]
    if not points and not ablation:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    model_points(ax, points, ".2f")
    for method in sorted({a["method"] for a in ablation}):
        pts = sorted((a["macs"] / 1e6, a["top1"]) for a in ablation if a["method"] == method)
        ax.plot(*zip(*pts, strict=True), marker=".", linestyle="--", label=method)
    xs = [p[1] for p in points] + [a["macs"] / 1e6 for a in ablation]
    ax.set_xlim(0, 1.25 * max(xs))  # from zero, so half the MACs looks like half
    ax.set_ylim(*top1_limits([p[2] for p in points] + [a["top1"] for a in ablation]))
    ax.set(xlabel="MACs per image (M)", ylabel="top-1 (%)", title="accuracy against MACs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    name = save(fig, path)
    plt.close(fig)
    return name


def latency_series(bench: dict[str, Any]) -> dict[str, list[tuple[int, Interval]]]:
    """'backend device precision variant model' -> [(batch, latency interval)], sorted by batch; the model
    named as benched (the fine-tuned one stands in for "pruned" once fine-tuning is done)."""
    names = {m: v.get("artifact", m) for m, v in bench.get("models", {}).items()}
    lines: dict[str, list[tuple[int, Interval]]] = {}
    for m in bench.get("measurements", []):
        label = f"{target_name(m)} {names.get(m['model'], m['model'])}"
        lines.setdefault(label, []).append((int(m["batch"]), latency_interval(m)))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in sorted(lines.items())}


def plot_latency(plt: Any, bench: dict[str, Any], path: Path) -> str | None:
    """Median latency against batch with p10-p90 error bars, unstable points hollow and labelled; a bench at
    one batch size is a bar chart (a log axis with one tick says nothing)."""
    lines = latency_series(bench)
    if not lines:
        return None
    batches = sorted({b for pts in lines.values() for b, _ in pts})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(batches) == 1:
        latency_bars(ax, lines)
    else:
        for label, pts in lines.items():
            line = ax.errorbar(
                [p[0] for p in pts],
                [p[1].median for p in pts],
                yerr=error(pts),
                marker="o",
                linestyle="--" if label.endswith("dense") else "-",
                capsize=4,
                label=label,
            )
            mark_unstable(ax, [(b, iv.median, iv) for b, iv in pts], line[0].get_color())
        ax.set(xscale="log", yscale="log", xlabel="batch")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
    ax.set_ylabel("median latency (ms)")
    unstable = "hatched" if len(batches) == 1 else "hollow"
    ax.set_title(f"latency (error bars: p10-p90 of the per-round medians; {unstable}: unstable)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if len(batches) > 1:  # the bars carry their labels on the axis
        ax.legend(fontsize=7)
    name = save(fig, path)
    plt.close(fig)
    return name


def error(points: list[tuple[int, Interval]]) -> list[list[float]]:
    return [[iv.median - iv.low for _, iv in points], [iv.high - iv.median for _, iv in points]]


def mark_unstable(ax: Any, points: list[tuple[float, float, Interval]], color: str) -> None:
    """Draw unstable points hollow with "unstable" beside them: a reader of the plot alone still sees it."""
    for x, y, iv in points:
        if not iv.stable:
            ax.scatter([x], [y], s=90, facecolors="white", edgecolors=color, linewidths=1.5, zorder=4)
            ax.annotate("unstable", (x, y), textcoords="offset points", xytext=(6, -10), fontsize=7, color=color)


def latency_bars(ax: Any, lines: dict[str, list[tuple[int, Interval]]]) -> None:
    """One bar per target and model at the single batch size, with its p10-p90 and unstable ones hatched."""
    labels = list(lines)
    ivs = [lines[k][0][1] for k in labels]
    bars = ax.bar(
        range(len(labels)),
        [iv.median for iv in ivs],
        yerr=error([lines[k][0] for k in labels]),
        capsize=4,
        color=["tab:blue" if k.endswith("dense") else "tab:green" for k in labels],
    )
    for bar, iv in zip(bars, ivs, strict=True):
        if not iv.stable:
            bar.set_hatch("//")
            bar.set_facecolor("white")
            ax.annotate("unstable", (bar.get_x() + bar.get_width() / 2, iv.high), ha="center", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_xlabel(f"batch {lines[labels[0]][0][0]}")


def headline_target(bench: dict[str, Any]) -> tuple[Any, ...] | None:
    """The target the accuracy-latency plot uses: ONNX Runtime CPU FP32 when measured, else the first one."""
    keys = [row_key(c)[:4] for c in bench.get("comparisons", [])]
    preferred = [k for k in keys if k[0] == "onnxruntime" and k[1] == "cpu" and k[2] == "fp32"]
    found = preferred or keys
    return found[0] if found else None


def plot_accuracy_latency(plt: Any, rows: list[dict[str, Any]], bench: dict[str, Any], path: Path) -> str | None:
    """Top-1 against latency, one panel per batch. The pruned model before fine-tuning has the fine-tuned
    model's layer shapes, so it is drawn at the latency measured for the benched pruned architecture."""
    target = headline_target(bench)
    top1 = {r["model"]: r["top1"] for r in rows if r["top1"] is not None}
    if target is None or not top1:
        return None
    benched = {m: v.get("artifact", m) for m, v in bench.get("models", {}).items()}
    latency: dict[int, dict[str, Interval]] = {}
    for m in bench.get("measurements", []):
        if row_key(m)[:4] == target and m["model"] in benched:
            per_model = latency.setdefault(int(m["batch"]), {})
            per_model[benched[m["model"]]] = latency_interval(m)
            if benched[m["model"]] == "finetuned":
                per_model["pruned"] = per_model["finetuned"]  # same architecture, same shapes
    batches = sorted(latency)[:4]
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 4), sharey=True, squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        points = [(m, latency[batch][m].median, t) for m, t in top1.items() if m in latency[batch]]
        for m, _, t in points:
            iv = latency[batch][m]
            ax.errorbar(iv.median, t, xerr=[[iv.median - iv.low], [iv.high - iv.median]], fmt="none", ecolor="grey")
        model_points(ax, points, ".3g")
        mark_unstable(ax, [(latency[batch][m].median, t, latency[batch][m]) for m, _, t in points], "tab:red")
        ax.set_xlim(0, 1.35 * max(latency[batch][m].high for m, _, _ in points))
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.set(xlabel=f"median latency at batch {batch} (ms)", title=f"batch {batch}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylim(*top1_limits(list(top1.values())))
    axes[0][0].set_ylabel("top-1 (%)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    name = target_name(dict(zip(("backend", "device", "precision", "variant"), target, strict=True)))
    fig.suptitle(f"accuracy against latency: {name} (bars: p10-p90 over rounds; hollow: unstable)", fontsize=10)
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


def top1_text(row: dict[str, Any]) -> str:
    """ "99.72 (360 images)": an accuracy never without the images it was measured on."""
    if row["top1"] is None:
        return "not recorded"
    return f"{row['top1']:.2f} ({row['top1_images']:,} images)" if row.get("top1_images") else f"{row['top1']:.2f}"


def models_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | top-1 (%) | MACs (M) | params (M) |", "|---|---:|---:|---:|"]
    for r in rows:
        top1 = top1_text(r)
        lines.append(f"| {r['model']} | {top1} | {r['macs'] / 1e6:,.2f} | {r['params'] / 1e6:,.3f} |")
    return lines


def spread_text(iv: Interval) -> str:
    return f"{number(iv.median)} ({number(iv.low)}-{number(iv.high)})" + ("" if iv.stable else " **unstable**")


def latency_table(bench: dict[str, Any]) -> list[str]:
    """Per target and batch: each model's median latency and the ratio, each with its p10-p90 over rounds."""
    ratios = {row_key(c): c for c in bench.get("comparisons", [])}
    pruned = bench.get("models", {}).get("pruned", {}).get("artifact", "pruned")  # finetuned when it was benched
    lines = [
        f"| target | batch | dense ms (p10-p90) | {pruned} ms (p10-p90) | {pruned}/dense (p10-p90) | MACs ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, models in grouped(bench).items():
        first = next(iter(models.values()))
        cells = [spread_text(latency_interval(models[m])) if m in models else "n/a" for m in ("dense", "pruned")]
        c = ratios.get(key)
        ratio = spread_text(ratio_interval(c)) if c else "n/a"
        macs = f"{c['macs_ratio']:.3f}" if c and c.get("macs_ratio") else "n/a"
        lines.append(f"| {target_label(first)} | {first['batch']} | {' | '.join(cells)} | {ratio} | {macs} |")
    return lines


def bench_notes(bench: dict[str, Any]) -> list[str]:
    rounds = bench.get("settings", {}).get("repeats")
    lines = [
        "",
        f"Latency: the median of every timed iteration; in brackets the p10-p90 of the per-round medians ({rounds} "
        "interleaved dense/pruned rounds). The ratio is the median of the paired per-round ratios, with their "
        f"p10-p90. **unstable**: a spread wider than {SPREAD_LIMIT:.0%} of the median.",
    ]
    env = bench.get("environment", {})
    skips = [Skip(s["backend"], s["device"], s["reason"]) for s in bench.get("skipped", [])]
    # as bench printed them: a host without a GPU gets one line for all GPU skips (reasons in bench.json)
    lines += [f"\n- {line.removeprefix('bench: ')}" for line in skip_lines(skips, bool(env.get("gpu")), False)]
    command = (bench.get("invocation") or {}).get("command")
    lines += ["", f"Measured on {env.get('cpu')} ({env.get('threads')} threads), load {env.get('load_average')}."]
    if command:
        lines[-1] += f" Command: `{command}`."
    if bench.get("hidden_rows"):
        lines[-1] += f" Not shown: {bench['hidden_rows']} rows of earlier benches kept in bench.json."
    return lines


def markdown(
    run: RunDir, recipe: Recipe, rows: list[dict[str, Any]], bench: dict[str, Any] | None, images: dict[str, str | None]
) -> str:
    lines = [f"# cplitool report: {recipe.run.name}", "", f"Recipe `{recipe.source}`, model `{recipe.model.name}`."]
    compared = compared_rows(run)
    lines += ["", "## Models", "", *models_table(rows + compared)]
    if compared:
        lines += [
            "",
            f"{', '.join(r['model'] for r in compared)}: prune.compare's methods, pruned from the same dense model "
            "to the same MACs target and evaluated before fine-tuning (not fine-tuned, not benched).",
        ]
    no_bench = "no bench results: run `cplitool bench`"
    sections = (
        ("Accuracy against MACs", "accuracy", "no accuracy recorded in this run"),
        ("Accuracy against latency", "accuracy_latency", "needs recorded accuracy and bench results"),
        ("Latency against batch", "latency", no_bench),
        ("Per-layer widths", "widths", "needs both the dense and the pruned model: run `cplitool prune`"),
    )
    for title, key, absent in sections:
        lines += ["", f"## {title}", ""]
        lines.append(f"![{title}]({images[key]})" if images[key] else f"_{absent}._")
        if key == "accuracy_latency" and images[key] and any(r["model"] == "finetuned" for r in rows):
            lines += [
                "",
                "The pruned model before fine-tuning has the fine-tuned model's layer shapes: it is drawn "
                "at the latency measured for that architecture.",
            ]
        if key == "latency" and bench:
            lines += ["", *latency_table(bench), *bench_notes(bench)]
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
    if not rows and not (bench and bench.get("measurements")):
        raise UsageError(
            f"{run.path}: nothing to report: no trained, pruned or fine-tuned model and no bench results; "
            f"run `cplitool run {recipe.source}` first"
        )
    images = {
        "accuracy": plot_accuracy(plt, rows + compared_rows(run), ablation_rows(run), folder / "accuracy_macs.png"),
        "accuracy_latency": plot_accuracy_latency(plt, rows, bench, folder / "accuracy_latency.png") if bench else None,
        "latency": plot_latency(plt, bench, folder / "latency_batch.png") if bench else None,
        "widths": plot_widths(plt, counts, pruned_name(run), folder / "widths.png"),
    }
    path = folder / "report.md"
    text = markdown(run, recipe, rows, bench, images)
    return atomic_write(path, lambda p: p.write_text(text))
