"""Accuracy against fine-tuning budget: how many epochs does each pruning method need to get back within a
point of dense? Users pay for fine-tuning (ImageNet epochs are GPU-days); a method's accuracy before it is
worth what it saves there.

Each (model, method, seed) is pruned once to 0.5 of its MACs, as benchmarks/prune_vs_peers.py does (`cplitool
prune` for cpli, cp and l1 in scope "all"; Torch-Pruning's MagnitudeImportance for the peer), then a copy of
it is fine-tuned for each budget: the same plain loop (benchmarks/short_finetune.py: SGD, lr 0.01 cosine to 0
over the budget's steps, batch 128, crop and flip, seed = the seed), so every budget is one schedule of the
same family, scaled. Top-1 on the full 10,000-image CIFAR-10 (JPEG q75) test set.

    .venv/bin/python benchmarks/finetune_budget.py [--models resnet20,mobilenet_v2,vgg16_w0.5]
        [--methods "cpli all,cp all,l1 all,torch-pruning magnitude"] [--seeds 0,1,2] [--budgets 0,0.125,0.5,1]
        [--long-budgets 4 --long-seeds 0]

--long-budgets run with --long-seeds only (one seed for 4 epochs when time is short; the table says so).
Finished cells are cached in benchmarks/results/finetune_budget.cells.json, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prune_vs_peers import PEER, RECIPES, WORK, cplitool_prune, evaluate, model_loaders, tp_prune
from results_io import REPO, RESULTS, locked_update, record
from seed_stats import interval
from short_finetune import sgd_steps

from cplitool.toolchain.artifacts import load_artifact, load_dense
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.recipe import load_recipe

METHODS = ["cpli all", "cp all", "l1 all", PEER]
CELLS = RESULTS / "finetune_budget.cells.json"
PLOT = REPO / "docs" / "img" / "finetune_budget.png"
WITHIN = 1.0  # points of top-1 below dense that count as recovered


def pruned(model_name: str, method: str, seed: int, args: argparse.Namespace, dense: nn.Module) -> nn.Module:
    """The method's pruned model at args.macs_keep: Torch-Pruning in process, cplitool through its CLI."""
    recipe = load_recipe(RECIPES[model_name])
    source = ModelSource.of(recipe)
    if method == PEER:
        return tp_prune(dense, source.shape(), args.macs_keep)
    slug = method.replace(" ", "-")
    name = f"budget-{model_name}-{checkpoint_tag(model_name)}-{slug}-m{args.macs_keep}-n{args.num_images}-seed{seed}"
    artifact = WORK / name / "pruned.pt"  # the name holds every setting: a second pass loads the first's
    if not artifact.exists():
        artifact = cplitool_prune(RECIPES[model_name], method, name, args.macs_keep, args.num_images, seed)
    return load_artifact(artifact, trusted=source)[0]


@functools.cache
def checkpoint_tag(model_name: str) -> str:
    """The first 12 hex digits of the dense checkpoint's sha256: cells and pruned models of a retrained
    checkpoint never mix with the old one's."""
    return sha256_file(load_recipe(RECIPES[model_name]).model.checkpoint)[:12]


def model_key(model_name: str) -> str:
    """The cache key's prefix of one dense checkpoint."""
    return f"{model_name}@{checkpoint_tag(model_name)}|"


def group_key(model_name: str, method: str, seed: int, args: argparse.Namespace) -> str:
    """The cache key's prefix shared by one pruned model's budgets."""
    return model_key(model_name) + f"{method}|{args.macs_keep}|{args.num_images}|{seed}|"


def cell_key(model_name: str, method: str, seed: int, budget: float, args: argparse.Namespace) -> str:
    return group_key(model_name, method, seed, args) + f"{float(budget)}"


def run_group(
    model_name: str, method: str, seed: int, budgets: list[float], args: argparse.Namespace, loaders: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every budget's cell of one pruned model (pruned once, fine-tuned from a fresh copy per budget)."""
    cells: dict[str, Any] = json.loads(CELLS.read_text()) if CELLS.exists() else {}
    todo = [b for b in budgets if cell_key(model_name, method, seed, b, args) not in cells]
    if todo:
        recipe = load_recipe(RECIPES[model_name])
        source = ModelSource.of(recipe)
        dense = load_dense(source, recipe.model.checkpoint)
        start = time.perf_counter()
        model = pruned(model_name, method, seed, args, dense)
        group = [c for k, c in cells.items() if k.startswith(group_key(model_name, method, seed, args))]
        prune_s = group[0]["prune_seconds"] if group else time.perf_counter() - start  # the first pass's prune
        shape = source.shape()
        macs_keep = count_model(model, shape).macs / count_model(dense, shape).macs
        for budget in todo:
            tuned = copy.deepcopy(model)
            steps = round(budget * len(loaders["train"]))
            ft_s = sgd_steps(tuned, loaders["train"], steps, lr=0.01, seed=seed) if steps else 0.0
            key = cell_key(model_name, method, seed, budget, args)
            cells[key] = {
                "model": model_name, "method": method, "seed": seed, "budget_epochs": budget, "steps": steps,
                "macs_keep": macs_keep, "top1": evaluate(tuned, loaders["test"]), "prune_seconds": prune_s,
                "finetune_seconds": ft_s, "load_average": os.getloadavg()[0],
            }  # fmt: skip
            cells = locked_update(CELLS, lambda old: {**old, key: cells[key]})  # noqa: B023 (called at once)
            print(json.dumps(cells[key]), flush=True)
    return [cells[cell_key(model_name, method, seed, b, args)] for b in budgets]


def cached_cells(args: argparse.Namespace, models: list[str]) -> list[dict[str, Any]]:
    """Every cached cell of these models and methods at args.macs_keep and args.num_images."""
    cells: dict[str, Any] = json.loads(CELLS.read_text()) if CELLS.exists() else {}
    methods = args.methods.split(",")
    return [
        c
        for k, c in sorted(cells.items())
        if c["model"] in models
        and c["method"] in methods
        and k.startswith(model_key(c["model"]) + f"{c['method']}|{args.macs_keep}|{args.num_images}|")
    ]


def summarise(
    cells: list[dict[str, Any]], dense_top1: dict[str, float], budgets: list[float]
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per (model, method): top-1 mean ± 95% t half-width per budget, and the smallest budget whose
    mean is within WITHIN points of dense."""
    pooled: dict[tuple[str, str], dict[float, list[float]]] = {}
    for c in cells:
        pooled.setdefault((c["model"], c["method"]), {}).setdefault(c["budget_epochs"], []).append(c["top1"])
    header = " | ".join(f"{b:g} ep" for b in budgets)
    rows = [
        f"| model (dense top-1) | method | {header} | fewest epochs within {WITHIN:g} point of dense |",
        "|---|---|" + "---:|" * len(budgets) + "---|",
    ]
    summary = []
    for (model_name, method), by_budget in pooled.items():
        dense = dense_top1[model_name]
        stats = {b: (*interval(v), len(v)) for b, v in sorted(by_budget.items())}
        recovered = next((b for b, (m, _, _) in stats.items() if m >= dense - WITHIN), None)
        text = []
        for b in budgets:
            if b not in stats:
                text.append("")
                continue
            m, h, n = stats[b]
            text.append(f"{m:.2f}" + (f" ± {h:.2f}" if h is not None else "") + f" (n={n})")
        reached = f"{recovered:g}" if recovered is not None else f"none up to {max(stats):g}"
        rows.append(f"| {model_name} ({dense:.2f}%) | {method} | {' | '.join(text)} | {reached} |")
        summary.append({
            "model": model_name, "method": method, "dense_top1": dense, "recovered_at_epochs": recovered,
            "budgets": {str(b): {"mean": m, "half_width_95": h, "seeds": n} for b, (m, h, n) in stats.items()},
        })  # fmt: skip
    return rows, summary


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Top-1 against fine-tuning epochs, one panel per model, a line per method with its 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(s["model"] for s in summary))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model_name in zip(axes[0], models, strict=True):
        rows = [s for s in summary if s["model"] == model_name]
        for s in rows:
            xs = [float(b) for b in s["budgets"]]
            xplot = [max(x, 1 / 32) for x in xs]  # 0 epochs drawn at the left edge of the log axis
            ms = [v["mean"] for v in s["budgets"].values()]
            hs = [v["half_width_95"] or 0.0 for v in s["budgets"].values()]
            (line,) = ax.plot(xplot, ms, marker="o", label=s["method"])
            ax.fill_between(xplot, [m - h for m, h in zip(ms, hs, strict=True)],
                            [m + h for m, h in zip(ms, hs, strict=True)], color=line.get_color(), alpha=0.2)  # fmt: skip
        dense = rows[0]["dense_top1"]
        ax.axhline(dense, color="black", lw=1, ls="--", label=f"dense {dense:.1f}%")
        ax.axhline(dense - WITHIN, color="grey", lw=0.8, ls=":", label=f"dense - {WITHIN:g}")
        ax.set_xscale("log", base=2)
        ax.set_title(model_name)
        ax.set_xlabel("fine-tuning epochs (0 drawn at 1/32)")
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(max(0, dense - 25), dense + 2)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,mobilenet_v2,vgg16_w0.5")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--macs-keep", type=float, default=0.5)
    parser.add_argument("--num-images", type=int, default=1000, help="images sampled by cpli/cp")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated: run.seed of the pruning and the fine-tune's")
    parser.add_argument("--budgets", default="0,0.125,0.5,1", help="fine-tune epochs run with every seed")
    parser.add_argument("--long-budgets", default="4", help="fine-tune epochs run with --long-seeds only")
    parser.add_argument("--long-seeds", default="0")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--from-cache", action="store_true", help="prune and fine-tune nothing: the table and plot of the cached cells"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    floats = lambda text: [float(v) for v in text.split(",") if v]  # noqa: E731
    budgets, long_budgets = floats(args.budgets), floats(args.long_budgets)
    seeds, long_seeds = [int(v) for v in args.seeds.split(",")], [int(v) for v in args.long_seeds.split(",") if v]
    cells: list[dict[str, Any]] = []
    dense_top1: dict[str, float] = {}
    for model_name in args.models.split(","):
        loaders, dense_top1[model_name] = model_loaders(model_name)
        if args.from_cache:
            continue
        for seed, mine in [*[(s, budgets) for s in seeds], *[(s, long_budgets) for s in long_seeds]]:
            for method in args.methods.split(","):  # short budgets on every seed first, then the long ones
                cells += run_group(model_name, method, seed, mine, args, loaders)
    if args.from_cache:
        cells = cached_cells(args, list(dense_top1))
    all_budgets = sorted({c["budget_epochs"] for c in cells})
    rows, summary = summarise(cells, dense_top1, all_budgets)
    plot(summary, PLOT)
    table = [
        f"Pruned to {args.macs_keep} of the MACs (cpli/cp sample {args.num_images} training images x 10 positions), "
        f"then fine-tuned for each budget from the same pruned model: SGD lr 0.01 cosine over the budget's steps, "
        "batch 128, seed = the pruning seed (0, 1, 2; n = seeds per cell). Top-1 on the full 10,000-image CIFAR-10 "
        f"(JPEG q75) test set: mean ± 95% t half-width over seeds. Plot: docs/img/{PLOT.name}.",
        "",
        *rows,
    ]
    print("\n".join(table))
    record("finetune_budget", "Accuracy against fine-tuning budget at 0.5 MACs", table,
           {"dense_top1": dense_top1, "summary": summary, "cells": cells}, args.threads)  # fmt: skip


if __name__ == "__main__":
    main()
