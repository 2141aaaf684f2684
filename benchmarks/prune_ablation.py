"""The CPLI ablation on CIFAR-10 (JPEG q75): random, l1, cp, cp+classification, cp+importance, cpli at the
same MACs targets, sharing stages, widths and surgery; top-1 before fine-tuning and after the same short
plain cross-entropy fine-tune.

The dense model comes from the recipe's run (train it first):
    .venv/bin/cplitool train benchmarks/recipes/ablation_vgg16_w025.toml
    .venv/bin/python benchmarks/prune_ablation.py --recipe benchmarks/recipes/ablation_vgg16_w025.toml
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from results_io import record  # also puts the repository on sys.path

from cplitool.toolchain.artifacts import resolve_model
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import recipe_input_shape
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.stage import sampling_loader
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.runtime import setup
from cplitool.toolchain.train.fit import fit
from cplitool.toolchain.train.loop import evaluate

VARIANTS: dict[str, dict[str, Any]] = {
    "random": {"method": "random"},
    "l1": {"method": "l1"},
    "cp": {"method": "cp"},
    "cp+classification": {"method": "cpli", "use_importance": False},
    "cp+importance": {"method": "cpli", "use_classification": False},
    "cpli": {"method": "cpli"},
}


def run_variant(
    recipe: Recipe, dense: torch.nn.Module, name: str, target: float, batches: list[Any], splits: tuple[Any, Any]
) -> dict[str, Any]:
    device = torch.device("cpu")
    cfg = dataclasses.replace(recipe.prune, macs_keep=target, **VARIANTS[name])
    model = copy.deepcopy(dense)
    shape = recipe_input_shape(recipe)
    start = time.perf_counter()
    plan = make_plan(model, shape, cfg)
    result = prune_model(model, plan, cfg, batches, device, recipe.run.seed)
    prune_s = time.perf_counter() - start
    train, val = splits
    before = evaluate(result.model, make_loader(val, recipe.data.eval_batch_size, shuffle=False), device)["top1"]
    with tempfile.TemporaryDirectory() as tmp:
        tuned = fit(
            result.model,
            recipe.finetune,
            recipe.data,
            train,
            val,
            device,
            Path(tmp) / "state.pt",
            name,
            recipe.run.seed,
        )
    return {
        "variant": name,
        "target": target,
        "macs_keep": plan.macs_keep,
        "top1_before_finetune": before,
        "top1_after_finetune": tuned.best["top1"],
        "prune_seconds": prune_s,
        "seconds": {"capture": result.capture_s, "gram": result.gram_s, "solve": result.solve_s},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="benchmarks/recipes/ablation_vgg16_w025.toml")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.3])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--name", default="prune_ablation")
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    if recipe.finetune.kd_weight:
        recipe.finetune = dataclasses.replace(recipe.finetune, kd_weight=0.0)  # plain cross-entropy, as fit() runs it
    setup(recipe.run)
    run = RunDir.for_recipe(recipe)
    dense, info, dense_path = resolve_model(recipe, run, "dense")
    train = build_split(recipe.data, "train", augment=True, seed=recipe.run.seed)
    val = build_split(recipe.data, "val", augment=False, seed=recipe.run.seed)
    dense_top1 = evaluate(dense, make_loader(val, recipe.data.eval_batch_size, shuffle=False), torch.device("cpu"))
    batches = list(sampling_loader(recipe))  # the same sampled images for every variant
    rows = []
    for target in args.targets:
        for name in args.variants:
            rows.append(run_variant(recipe, dense, name, target, batches, (train, val)))
            r = rows[-1]
            print(
                f"{name:>18} @ {target:.0%}: before {r['top1_before_finetune']:.2f}%  after "
                f"{r['top1_after_finetune']:.2f}%  (prune {r['prune_seconds']:.0f} s)",
                flush=True,
            )
    ft = recipe.finetune
    table = [
        f"Dense model: {recipe.model.name} {recipe.model.kwargs} from {dense_path}, top-1 {dense_top1['top1']:.2f}% on "
        f"{dense_top1['samples']} validation images of {recipe.data.name} {recipe.data.root} "
        f"(data.val_subset = {recipe.data.val_subset}). "
        f"Sampling: {recipe.prune.num_images} training images x {recipe.prune.positions} positions. Fine-tune: "
        f"{ft.epochs} epoch(s) of at most {ft.max_steps or 'all'} steps, batch {recipe.data.batch_size}, lr {ft.lr} "
        f"({ft.schedule}), plain cross-entropy, on data.train_subset = {recipe.data.train_subset}. "
        f"Load average at start/end: see JSON.",
        "",
        "| target MACs | variant | MACs kept | top-1 before fine-tune | top-1 after fine-tune | prune time (s) |",
        "|---:|---|---:|---:|---:|---:|",
        *[
            f"| {r['target']:.0%} | {r['variant']} | {r['macs_keep']:.3f} | {r['top1_before_finetune']:.2f} | "
            f"{r['top1_after_finetune']:.2f} | {r['prune_seconds']:.0f} |"
            for r in rows
        ],
    ]
    print("\n".join(table))
    data = {
        "recipe": str(recipe.source),
        "dense": {"path": str(dense_path), "arch": info.arch, "kwargs": info.kwargs, **dense_top1},
        "rows": rows,
        "load_average_end": os.getloadavg(),
    }
    record(args.name, "CPLI ablation on CIFAR-10 (JPEG q75)", table, data, torch.get_num_threads())


if __name__ == "__main__":
    main()
