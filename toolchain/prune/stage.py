"""The `prune` stage: dense model -> pruned.pt (self-describing artifact with its plan), prune_report.json
and the manifest entry. Every check that can fail on bad input runs before any sampling starts."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.artifacts import resolve_model, save_artifact
from cplitool.toolchain.counting import ModelCount, count_model
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import recipe_input_shape
from cplitool.toolchain.io import sha256_file, write_json
from cplitool.toolchain.progress import console
from cplitool.toolchain.prune.group_pruner import GroupReport
from cplitool.toolchain.prune.plan import PrunePlan, make_plan
from cplitool.toolchain.prune.pruner import PruneResult, StageReport, Terms, prune_model
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.runtime import setup
from cplitool.toolchain.train.loop import evaluate
from cplitool.toolchain.train.stage import check_classes, dense_accuracy, val_loader

PRUNE_SECTIONS = ("run", "model", "data", "prune")
MEANING = (
    "keep = output channels kept / output channels before, for the layer whose filters are removed (its "
    "consumer loses the same input channels); macs_keep = MACs after / MACs before of the whole model for "
    "one input of the recorded shape; the target is met within 2%. err = relative reconstruction error "
    "sum||Y - Yhat||^2 / sum||Y||^2 of the consumer's output on the sampled positions, with the kept "
    "channels' original weights (before) and after the least-squares refit (after); ridge = the refit's "
    "relative ridge toward the original weights, chosen on held-out images (null: the original weights were "
    "kept). scope all: a group is one set of coupled channels kept or removed together in every member (groups); its consumers are refitted; "
    "data_free_groups lists the groups chosen without reconstruction and why (docs/coupled-groups.md)."
)


def consumer_rows(stages: list[StageReport], groups: list[GroupReport]) -> dict[str, dict[str, Any]]:
    """Per consumer layer: its reconstruction errors and the cost of the stage (or group) that refitted it;
    in scope "all" a consumer of several groups shows its last one."""
    rows: dict[str, dict[str, Any]] = {}
    for st in stages:
        rows[st.consumer] = {"err_before": st.err_before, "err_after": st.err_after, "ridge": st.ridge, "rows": st.rows,
                             "capture_s": st.capture_s, "gram_s": st.gram_s, "solve_s": st.solve_s}  # fmt: skip
    for g in groups:
        for c in g.consumers:
            rows[c.name] = {"err_before": c.err_before, "err_after": c.err_after, "ridge": c.ridge, "rows": g.rows,
                            "group": g.root,
                            "capture_s": g.capture_s, "gram_s": g.gram_s, "solve_s": g.solve_s}  # fmt: skip
    return rows


def layer_table(plan: PrunePlan, dense: ModelCount, pruned: ModelCount, result: PruneResult) -> list[dict[str, Any]]:
    """One row per conv/linear layer: channels and MACs before/after, and the stage it was consumer of."""
    after = {lc.name: lc for lc in pruned.layers}
    consumers = consumer_rows(result.stages, result.groups)
    rows = []
    for lc in dense.layers:
        new = after[lc.name]
        row: dict[str, Any] = {
            "layer": lc.name,
            "kind": lc.kind,
            "in_before": lc.in_channels,
            "in_after": new.in_channels,
            "out_before": lc.out_channels,
            "out_after": new.out_channels,
            "keep": new.out_channels / lc.out_channels,
            "macs_before": lc.macs,
            "macs_after": new.macs,
            **consumers.get(lc.name, {}),
        }
        rows.append(row)
    return rows


def build_report(
    recipe: Recipe, plan: PrunePlan, dense: ModelCount, pruned: ModelCount, result: PruneResult
) -> dict[str, Any]:
    return {
        "method": recipe.prune.method,
        "terms": dataclasses.asdict(Terms.of(recipe.prune)),
        "input_shape": list(plan.input_shape),
        "target_macs_keep": recipe.prune.macs_keep,
        "macs_before": dense.macs,
        "macs_after": pruned.macs,
        "macs_keep": pruned.macs / dense.macs,
        "params_before": dense.params,
        "params_after": pruned.params,
        "uniform_ratio": plan.uniform_ratio,
        "round_to": recipe.prune.round_to,
        "meaning": MEANING,
        "scope": plan.scope,
        "layers": layer_table(plan, dense, pruned, result),
        **result.to_dict(),
        "load_average": list(os.getloadavg()),
        "threads": torch.get_num_threads(),
    }


def steps(plan: PrunePlan) -> str:
    """What the pruner walks through: coupled groups in scope "all", producer/consumer stages in "blocks"."""
    return f"{len(plan.groups)} groups" if plan.scope == "all" else f"{len(plan.stages)} stages"


def sampling_loader(recipe: Recipe) -> Any:
    """The first prune.num_images training images of a seeded permutation, unaugmented, in a fixed order."""
    data_cfg = dataclasses.replace(recipe.data, train_subset=recipe.prune.num_images)
    split = build_split(data_cfg, "train", augment=False, seed=recipe.run.seed)
    check_classes(recipe, split)
    return make_loader(split, recipe.prune.batch_size, shuffle=False, workers=recipe.data.workers)


def top1(recipe: Recipe, model: nn.Module, device: torch.device, label: str = "eval pruned") -> dict[str, float]:
    return evaluate(model.to(device), val_loader(recipe), device, label=label)


def compare_methods(recipe: Recipe, dense: nn.Module, device: torch.device) -> list[dict[str, Any]]:
    """prune.compare's methods, each pruned from a copy of `dense` to the same MACs target and evaluated
    before fine-tuning: {method, macs, params, top1, images} rows beside prune.method's own."""
    rows = []
    shape = recipe_input_shape(recipe)
    for method in recipe.prune.compare:
        cfg = dataclasses.replace(recipe.prune, method=method, compare=[])
        model = copy.deepcopy(dense)
        plan = make_plan(model, shape, cfg)
        loader = sampling_loader(recipe) if Terms.of(cfg).sampled else []
        console.print(f"comparing: {method} to the same MACs target, evaluated before fine-tuning")
        pruned = prune_model(model, plan, cfg, loader, device, recipe.run.seed).model.cpu().eval()
        count = count_model(pruned, shape)
        accuracy = top1(recipe, pruned, device, f"eval {method}")
        rows.append(
            {
                "method": method,
                "macs": count.macs,
                "params": count.params,
                "top1": accuracy["top1"],
                "images": int(accuracy["samples"]),
            }
        )
    return rows


def prune_stage(recipe: Recipe) -> dict[str, Any]:
    """Prune the run's dense model per recipe.prune; writes pruned.pt, prune_report.json and the manifest."""
    run = RunDir.open(recipe)
    device = setup(recipe.run)
    model, info, dense_path = resolve_model(recipe, run, "dense")
    dense = dense_accuracy(recipe, run, model, dense_path, info.metrics)
    key = hashlib.sha256((recipe.section_hash(*PRUNE_SECTIONS) + sha256_file(dense_path)).encode()).hexdigest()[:16]
    shape = recipe_input_shape(recipe)
    plan = make_plan(model, shape, recipe.prune)  # unmeetable targets, nothing prunable: fail here
    dense_count = count_model(model, shape)
    loader = sampling_loader(recipe) if Terms.of(recipe.prune).sampled else []
    run.begin()
    compared = compare_methods(recipe, model, device)
    console.print(
        f"pruning {recipe.model.name} with {recipe.prune.method}: {steps(plan)}, MACs keep "
        f"{plan.macs_keep:.3f} (target {recipe.prune.macs_keep})"
    )
    result = prune_model(model, plan, recipe.prune, loader, device, recipe.run.seed)
    pruned = result.model.cpu().eval()
    pruned_count = count_model(pruned, shape)
    report = build_report(recipe, plan, dense_count, pruned_count, result)
    accuracy = top1(recipe, pruned, device)
    pruned.cpu()
    metrics = {
        "macs_before": dense_count.macs,
        "macs_after": pruned_count.macs,
        "macs_keep": report["macs_keep"],
        "params_before": dense_count.params,
        "params_after": pruned_count.params,
        "top1_before_finetune": accuracy["top1"],
        "top5_before_finetune": accuracy["top5"],
        "top1_images": int(accuracy["samples"]),
        "dense_top1": dense["top1"],
        "dense_top1_images": dense["images"],
        "compare": compared,
        "seconds": report["seconds"],
    }
    report["metrics"] = metrics
    plan_dict = {**plan.to_dict(), "method": recipe.prune.method, "prune": dataclasses.asdict(recipe.prune)}
    artifact = save_artifact(run.file("pruned.pt"), pruned, dataclasses.replace(info, plan=plan_dict, metrics=metrics))
    write_json(run.file("prune_report.json"), report)
    run.record("prune", artifact, key, metrics, report="prune_report.json", dense=str(dense_path))
    console.print(
        f"pruned: MACs {dense_count.macs / 1e6:,.2f} M -> {pruned_count.macs / 1e6:,.2f} M "
        f"({report['macs_keep']:.1%}); top-1 {dense['top1']:.2f}% -> {accuracy['top1']:.2f}% before fine-tuning "
        f"({int(accuracy['samples'])} images)"
    )
    return report
