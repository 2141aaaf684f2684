"""The `train` and `eval` stages: dense training into the run directory, and evaluation of any artifact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from cplitool.toolchain.accuracy import CACHE, cached_accuracy, recorded, store_accuracy
from cplitool.toolchain.artifacts import model_info_from_recipe, resolve_model, save_artifact
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.data.registry import DataSplit
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.finite import require_finite_weights
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.paths import shown
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.runtime import is_main_process, setup
from cplitool.toolchain.train.fit import fit, summary
from cplitool.toolchain.train.loop import evaluate

TRAIN_SECTIONS = ("run", "model", "data", "train")


def check_classes(recipe: Recipe, data: DataSplit) -> None:
    if data.num_classes != recipe.model.num_classes:
        raise UsageError(
            f"{recipe.source}: model.num_classes is {recipe.model.num_classes} but data set {recipe.data.name!r} has "
            f"{data.num_classes} classes"
        )


def train_dense(recipe: Recipe, force: bool = False) -> dict[str, Any]:
    """Train the dense model unless the recipe supplies a checkpoint or dense.pt is up to date (same
    run/model/data/train sections, file unchanged); writes dense.pt and a manifest entry."""
    run = RunDir.open(recipe)
    key = recipe.section_hash(*TRAIN_SECTIONS)
    if recipe.model.checkpoint:
        console.print(f"dense checkpoint given ({recipe.model.checkpoint}): nothing to train")
        return {}
    if not force and run.up_to_date("train", key):
        entry = run.stage("train") or {}
        console.print(f"dense model up to date: {run.artifact('train')} (use --force to train again)")
        return dict(entry.get("metrics", {}))
    device = setup(recipe.run)
    train_data = build_split(recipe.data, "train", augment=True, seed=recipe.run.seed)
    val_data = build_split(recipe.data, "val", augment=False, seed=recipe.run.seed)
    check_classes(recipe, train_data)
    pretrained = {"pretrained": True} if recipe.model.pretrained else {}  # start from torchvision's weights
    model = ModelSource.of(recipe).build(**pretrained)
    run.begin()
    state_path = run.file("train.state.pt")
    start = time.perf_counter()
    result = fit(model, recipe.train, recipe.data, train_data, val_data, device, state_path, key, recipe.run.seed)
    metrics = {**summary(result), "train_seconds": round(time.perf_counter() - start, 2)}  # this session's share
    if is_main_process():
        info = model_info_from_recipe(recipe)
        info.metrics = result.best
        artifact = save_artifact(run.file("dense.pt"), result.model, info)
        run.record("train", artifact, key, metrics)
        state_path.unlink(missing_ok=True)
        console.print(
            f"dense model: top-1 {result.best['top1']:.2f}% after {metrics['train_seconds']:.1f} s of training -> {shown(artifact)}"
        )
    return metrics


def evaluate_model(recipe: Recipe, which: str, model: nn.Module | None = None) -> dict[str, Any]:
    """Top-1/top-5/loss of `which` (dense, pruned, finetuned or a path) on the validation split; `model`,
    when given, is what `which` names already loaded (e.g. an ONNX file behind a module). The dense
    model's result goes to the run's accuracy cache, so the report shows it; nothing else is written."""
    run = RunDir(recipe.run_dir)
    device = setup(recipe.run)
    if model is None:
        model, _info, path = resolve_model(recipe, run, which)
    else:
        path = Path(which)
    require_finite_weights(model, f"{which} ({path.name})")
    metrics = evaluate(model.to(device), val_loader(recipe), device, label=f"eval {which}")
    if which == "dense" and run.path.is_dir():
        store_accuracy(run, path, recipe.section_hash("data"), metrics)
    return {"artifact": str(path), **metrics}


def val_loader(recipe: Recipe) -> Any:
    val = build_split(recipe.data, "val", augment=False, seed=recipe.run.seed)
    check_classes(recipe, val)
    return make_loader(val, recipe.data.eval_batch_size, shuffle=False, workers=recipe.data.workers)


def dense_accuracy(
    recipe: Recipe, run: RunDir, model: nn.Module, path: Path, metrics: dict[str, Any]
) -> dict[str, Any]:
    """{top1, images} of the dense model: as training recorded it (`metrics`), else from the run's cache,
    else evaluated now, once, and cached (a checkpoint brought by the user)."""
    known = recorded(metrics) or cached_accuracy(run, path, recipe.section_hash("data"))
    if known:
        return known
    console.print(f"evaluating the dense checkpoint {path.name} once (cached in the run's {CACHE})")
    device = setup(recipe.run)
    result = evaluate(model.to(device), val_loader(recipe), device, label="eval dense")
    model.cpu()
    return store_accuracy(run, path, recipe.section_hash("data"), result)
