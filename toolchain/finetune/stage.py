"""The `finetune` stage: train the pruned artifact back towards the dense model's accuracy.

Reads the prune stage's artifact and the dense teacher, runs cplitool.toolchain.train.fit with the recipe's
[finetune] settings and a distillation loss, and writes finetuned.pt with the pruned artifact's plan.
The state file (finetune.state.pt) is keyed by the recipe sections and the pruned artifact's hash, so a
killed run continues from its last finished epoch, and a changed recipe or a new pruned model restarts.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from cplitool.toolchain.artifacts import load_artifact, resolve_model, save_artifact
from cplitool.toolchain.data import build_split
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.finetune.kd import distillation_loss
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.models.source import ModelSource
from cplitool.toolchain.paths import shown
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.runtime import is_main_process, setup
from cplitool.toolchain.train.fit import fit, summary
from cplitool.toolchain.train.stage import check_classes

FINETUNE_SECTIONS = ("run", "model", "data", "finetune")
STATE_FILE = "finetune.state.pt"


def finetune_key(recipe: Recipe, pruned_sha256: str) -> str:
    """The recipe's fine-tuning sections combined with the pruned artifact they start from."""
    blob = f"{recipe.section_hash(*FINETUNE_SECTIONS)}:{pruned_sha256}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def finetune_stage(recipe: Recipe, force: bool = False) -> dict[str, Any]:
    """Fine-tune the pruned model with distillation from the dense one, unless finetuned.pt is up to date
    (same recipe sections, same pruned model, file unchanged); records manifest stage "finetune"."""
    run = RunDir.open(recipe)
    pruned_path = run.artifact("prune")
    if pruned_path is None:
        raise UsageError(f"no pruned model in {run.path}: run `cplitool prune {recipe.source}` first")
    key = finetune_key(recipe, sha256_file(pruned_path))
    if not force and run.up_to_date("finetune", key):
        console.print(f"fine-tuned model up to date: {run.artifact('finetune')} (use --force to fine-tune again)")
        return dict((run.stage("finetune") or {}).get("metrics", {}))
    device = setup(recipe.run)
    student, info = load_artifact(pruned_path, ModelSource.of(recipe))
    cfg = recipe.finetune
    train_data = build_split(recipe.data, "train", augment=True, seed=recipe.run.seed)
    val_data = build_split(recipe.data, "val", augment=False, seed=recipe.run.seed)
    check_classes(recipe, train_data)
    loss_fn = None
    if cfg.kd_weight > 0 and cfg.epochs > 0:
        teacher, _, teacher_path = resolve_model(recipe, run, "dense")
        teacher.to(device)
        if cfg.channels_last and device.type == "cuda":
            teacher.to(memory_format=torch.channels_last)
        console.print(f"distilling from {teacher_path.name} (weight {cfg.kd_weight}, temperature {cfg.kd_temperature})")
        loss_fn = distillation_loss(teacher, cfg.kd_temperature, cfg.kd_weight, cfg.label_smoothing)
    run.begin()
    state_path = run.file(STATE_FILE)
    result = fit(student, cfg, recipe.data, train_data, val_data, device, state_path, key, recipe.run.seed, loss_fn)
    before = info.metrics.get("top1")
    metrics = {**summary(result), "top1_before": before}
    if is_main_process():
        info.metrics = {**result.best, "top1_before_finetune": before}
        artifact = save_artifact(run.file("finetuned.pt"), result.model, info)
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        run.record("finetune", artifact, key, metrics, processes=world)
        state_path.unlink(missing_ok=True)
        was = f" (pruned: {before:.2f}%)" if isinstance(before, int | float) else ""
        console.print(f"fine-tuned model: top-1 {result.best['top1']:.2f}%{was} -> {shown(artifact)}")
    return metrics
