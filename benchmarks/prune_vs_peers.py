"""cplitool on users' own networks against Torch-Pruning, at the same MACs on CIFAR-10 (JPEG q75).

Two dense models trained outside cplitool (benchmarks/train_foreign_checkpoint.py) and loaded the way a
user would load them (benchmarks/user_models/*.toml): a ResNet-20 written as the user's own module
(model.name = "cifar_resnet:ResNet20", 1x1-conv downsample shortcuts) and torchvision's MobileNetV2 at
half width (model.name = "torchvision.models:mobilenet_v2"). Each is pruned to 0.5 of its MACs by
  cpli scope "blocks", cpli scope "all", cp scope "all", l1 scope "all"  (`cplitool prune`, the CLI), and
  Torch-Pruning's MetaPruner with MagnitudeImportance(p=2) (the peer; its uniform ratio bisected until the
  same counter, cplitool.toolchain.counting, gives the same MACs keep),
then every pruned model gets one identical short fine-tune (plain SGD loop, cross-entropy, same seed and
batches). Top-1 on the full 10,000-image test set before and after it. The "plain refit" rows are the
refit before the held-out ridge search (prune.ridge_search = false).

    .venv/bin/python benchmarks/prune_vs_peers.py [--models resnet20,mobilenet_v2] [--finetune-epochs 1]
        [--methods "cpli all,torch-pruning magnitude"] [--seeds 0,1,2]

Finished cells are cached in benchmarks/results/prune_vs_peers.cells.json, so a killed run resumes; `--name`
gives a re-check its own cache and table (after a solver change: the same cells, fresh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_io import REPO, RESULTS, record
from short_finetune import sgd_steps

from cplitool.toolchain.artifacts import load_artifact, load_dense
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.io import write_json
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.recipe import load_recipe

RECIPES = {
    "resnet20": REPO / "benchmarks" / "user_models" / "resnet20_cifar10.toml",
    "mobilenet_v2": REPO / "benchmarks" / "user_models" / "mobilenet_v2_cifar10.toml",
    "vgg16_w0.5": REPO / "benchmarks" / "user_models" / "vgg16_w0.5_cifar10.toml",
}
PLAIN = {"prune.ridge_search": "false"}  # the refit as before the ridge search: least squares, ridge 1e-4
CPLITOOL = {  # method label -> prune overrides; the unlabelled rows use the defaults (the ridge search)
    "cpli blocks": {"prune.method": '"cpli"', "prune.scope": '"blocks"'},
    "cpli all": {"prune.method": '"cpli"', "prune.scope": '"all"'},
    "cp all": {"prune.method": '"cp"', "prune.scope": '"all"'},
    "l1 all": {"prune.method": '"l1"', "prune.scope": '"all"'},
    "cpli blocks (plain refit)": {"prune.method": '"cpli"', "prune.scope": '"blocks"', **PLAIN},
    "cpli all (plain refit)": {"prune.method": '"cpli"', "prune.scope": '"all"', **PLAIN},
    "cp all (plain refit)": {"prune.method": '"cp"', "prune.scope": '"all"', **PLAIN},
    # the plain refit's relative ridge raised 100x by hand: what showed the late layers' refit overfits
    "cpli all (plain refit ridge 1e-2)": {
        "prune.method": '"cpli"',
        "prune.scope": '"all"',
        "prune.ridge": "0.01",
        **PLAIN,
    },
}
PEER = "torch-pruning magnitude"
NAME = "prune_vs_peers"
WORK = REPO / "runs" / "prune_vs_peers"


def evaluate(model: nn.Module, loader: Any) -> float:
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            seen += len(y)
    return 100.0 * correct / seen


class Refused(Exception):
    """cplitool refused the cell (exit 2) with this one-line reason."""


def cplitool_prune(recipe: Path, label: str, name: str, macs_keep: float, num_images: int, seed: int) -> Path:
    """`cplitool prune` as a user runs it; returns the pruned artifact."""
    run_dir = WORK / name
    sets = {
        **CPLITOOL[label],
        "run.seed": str(seed),
        "prune.macs_keep": str(macs_keep),
        "prune.round_to": "1",
        "prune.num_images": str(num_images),
        "run.dir": json.dumps(str(run_dir)),
        "run.name": json.dumps(name),
    }
    cmd = [str(Path(sys.executable).parent / "cplitool"), "prune", str(recipe)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode == 2:  # a usage error: the method cannot reach the target on this model
        raise Refused(done.stderr.strip().splitlines()[-1])
    done.check_returncode()
    return run_dir / "pruned.pt"


def tp_prune(model: nn.Module, shape: tuple[int, ...], macs_keep: float) -> nn.Module:
    """Torch-Pruning's MetaPruner, MagnitudeImportance(p=2), classifier ignored; the per-layer ratio is
    bisected so that cplitool.toolchain.counting gives the same MACs keep as the cplitool rows (within 1%)."""
    import copy

    import torch_pruning as tp

    dense = count_model(model, shape).macs
    lo, hi = 0.0, 0.95
    best: tuple[nn.Module, float] | None = None
    for _ in range(14):
        ratio = (lo + hi) / 2
        m = copy.deepcopy(model)
        heads = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1:]
        pruner = tp.pruner.MetaPruner(
            m, torch.zeros(1, *shape), importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=ratio, ignored_layers=heads,
        )  # fmt: skip
        pruner.step()
        keep = count_model(m, shape).macs / dense
        if best is None or abs(keep - macs_keep) < abs(best[1] - macs_keep):
            best = (m, keep)
        lo, hi = (ratio, hi) if keep > macs_keep else (lo, ratio)
    assert best is not None
    return best[0]


def prune_one(
    model_name: str, label: str, args: argparse.Namespace, source: ModelSource, dense: nn.Module, shape: tuple[int, ...]
) -> nn.Module:
    if label == PEER:
        return tp_prune(dense, shape, args.macs_keep)
    run_name = f"{model_name}-{label.replace(' ', '-').replace('(', '').replace(')', '')}-seed{args.seed}"
    artifact = cplitool_prune(RECIPES[model_name], label, run_name, args.macs_keep, args.num_images, args.seed)
    return load_artifact(artifact, trusted=source)[0]


def cell(model_name: str, label: str, args: argparse.Namespace, loaders: dict[str, Any]) -> dict[str, Any]:
    recipe_path = RECIPES[model_name]
    recipe = load_recipe(recipe_path)
    source = ModelSource.of(recipe)
    shape = source.shape()
    dense = load_dense(source, recipe.model.checkpoint)
    dense_macs = count_model(dense, shape).macs
    start = time.perf_counter()
    try:
        pruned = prune_one(model_name, label, args, source, dense, shape)
    except Refused as e:
        return {"model": model_name, "method": label, "refused": str(e)}
    prune_s = time.perf_counter() - start
    macs = count_model(pruned, shape).macs
    before = evaluate(pruned, loaders["test"])
    steps = args.finetune_epochs * len(loaders["train"])
    ft_s = sgd_steps(pruned, loaders["train"], steps, lr=0.01, seed=args.seed)
    after = evaluate(pruned, loaders["test"])
    return {
        "model": model_name, "method": label, "seed": args.seed, "macs_keep": macs / dense_macs, "top1_before": before,
        "top1_after": after, "prune_seconds": prune_s, "finetune_seconds": ft_s,
        "load_average": os.getloadavg()[0],
    }  # fmt: skip


def spread(values: list[float]) -> str:
    """Mean, and with several seeds their sample standard deviation and the range."""
    if len(values) == 1:
        return f"{values[0]:.2f}%"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}% ({min(values):.2f}-{max(values):.2f})"


def row(runs: list[dict[str, Any]], dense_top1: dict[str, float]) -> str:
    """One table row for a model and method: every seed's cell pooled."""
    r = runs[0]
    head = f"| {r['model']} ({dense_top1[r['model']]:.2f}%) | {r['method']} |"
    if "refused" in r:
        return f"{head} refused by cplitool: {r['refused'].removeprefix('error: ')[:160]} | | | | |"
    before, after = spread([c["top1_before"] for c in runs]), spread([c["top1_after"] for c in runs])
    prune_s = statistics.median(c["prune_seconds"] for c in runs)
    return f"{head} {r['macs_keep']:.3f} | {len(runs)} | {before} | {after} | {prune_s:.0f} |"


def model_loaders(model_name: str) -> tuple[dict[str, Any], float]:
    """The model's CIFAR-10 test and (augmented) train loaders, and its dense top-1 on the test set."""
    recipe = load_recipe(RECIPES[model_name])
    if not Path(recipe.data.root).is_dir():
        sys.exit(f"CIFAR-10 JPEG folder not found at {recipe.data.root}")
    loaders = {
        "test": make_loader(build_split(recipe.data, "val", augment=False), 500, shuffle=False),
        "train": make_loader(build_split(recipe.data, "train", augment=True), 128, shuffle=True, seed=0, drop_last=True),
    }  # fmt: skip
    return loaders, evaluate(load_dense(ModelSource.of(recipe), recipe.model.checkpoint), loaders["test"])


def cell_key(model_name: str, label: str, args: argparse.Namespace) -> str:
    """The cache key; seed 0's keys carry no seed (they predate --seeds)."""
    key = f"{model_name}|{label}|{args.macs_keep}|{args.num_images}|{args.finetune_epochs}"
    return key + (f"|seed{args.seed}" if args.seed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,mobilenet_v2")
    parser.add_argument("--methods", default=",".join([*CPLITOOL, PEER]))
    parser.add_argument("--macs-keep", type=float, default=0.5)
    parser.add_argument("--num-images", type=int, default=1000, help="images sampled by cpli/cp")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seeds", default="0", help="comma-separated: run.seed of the pruning and the fine-tune's")
    parser.add_argument("--name", default=NAME, help="results/NAME.md and its cell cache (another name: a re-check)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = RESULTS / f"{args.name}.cells.json"
    cells: dict[str, Any] = json.loads(cache.read_text()) if cache.exists() else {}
    dense_top1: dict[str, float] = {}
    for model_name in args.models.split(","):
        loaders, dense_top1[model_name] = model_loaders(model_name)
        for seed in [int(v) for v in args.seeds.split(",")]:
            args.seed = seed
            for label in args.methods.split(","):
                key = cell_key(model_name, label, args)
                if key not in cells:
                    cells[key] = cell(model_name, label, args, loaders)
                    write_json(cache, cells)
                print(json.dumps(cells[key]), flush=True)
    rows = [c for k, c in cells.items() if k.split("|")[0] in dense_top1]
    order = [PEER, *CPLITOOL]
    pooled: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in sorted(rows, key=lambda c: (list(dense_top1).index(c["model"]), order.index(c["method"]))):
        pooled.setdefault((c["model"], c["method"]), []).append(c)
    table = [
        f"MACs keep target {args.macs_keep}; cpli/cp sample {args.num_images} training images x 10 positions; "
        f"fine-tune: {args.finetune_epochs} epoch(s) of SGD (lr 0.01 cosine, batch 128), identical for all; top-1 "
        "on the full 10,000-image CIFAR-10 (JPEG q75) test set. With several seeds (run.seed of the pruning and "
        "the fine-tune's seed): mean ± sample standard deviation (range).",
        "",
        "| model (dense top-1) | method | MACs keep | seeds | top-1 before FT | top-1 after FT | prune s (median) |",
        "|---|---|---:|---:|---:|---:|---:|",
        *[row(runs, dense_top1) for runs in pooled.values()],
    ]
    print("\n".join(table))
    record(args.name, "Own networks: cplitool vs Torch-Pruning at 0.5 MACs", table,
           {"dense_top1": dense_top1, "cells": rows}, args.threads)  # fmt: skip


if __name__ == "__main__":
    main()
