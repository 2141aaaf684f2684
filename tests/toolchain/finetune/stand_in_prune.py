"""A stand-in for the prune stage in tests of fine-tuning and of `cplitool run`: it keeps the first half
of every quick_vgg layer's channels (no CPLI, no search), so these tests do not depend on issue 3's
pruning code. It writes what the real stage writes: pruned.pt with a plan and a manifest entry "prune"."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from toolchain.artifacts import ModelInfo, resolve_model, save_artifact
from toolchain.io import sha256_file
from toolchain.models.vgg import VGG
from toolchain.recipe import Recipe
from toolchain.rundir import RunDir

HALF_CFG: list[int | str] = [16, 16, "M", 32, 32, "M", 64]
ENTRY = "tests.toolchain.finetune.stand_in_prune:prune_stage"


def prune_stage(recipe: Recipe) -> dict[str, Any]:
    run = RunDir.for_recipe(recipe)
    dense, info, dense_path = resolve_model(recipe, run, "dense")
    small = VGG(HALF_CFG, recipe.model.num_classes, in_channels=1)
    big = dense.state_dict()
    small.load_state_dict({k: big[k][tuple(slice(0, n) for n in v.shape)] for k, v in small.state_dict().items()})
    plan = {"method": "first-channels stand-in", "widths": [v for v in HALF_CFG if v != "M"]}
    path = save_artifact(run.file("pruned.pt"), small, ModelInfo(info.arch, info.num_classes, info.kwargs, plan))
    key = hashlib.sha256(f"{recipe.section_hash('run', 'model', 'data', 'prune')}:{sha256_file(dense_path)}".encode())
    run.record("prune", path, key.hexdigest()[:16], {"plan": plan})
    return {"plan": plan}


DIGITS_RECIPE = """
[run]
name = "ft"
threads = 1
[model]
name = "quick_vgg"
[data]
name = "digits"
batch_size = 64
eval_batch_size = 512
[train]
epochs = 2
lr = 0.05
schedule = "onecycle"
[finetune]
epochs = 2
lr = 0.01
max_steps = 8
"""


def digits_recipe(folder: Path) -> Path:
    """A quick_vgg-on-digits recipe (dense training ~2 s, fine-tuning ~1 s per epoch on one core)."""
    path = folder / "ft.toml"
    path.write_text(DIGITS_RECIPE)
    return path


def pruned_run(folder: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Dense training plus the stand-in prune: a run directory ready for fine-tuning."""
    from toolchain.recipe import load_recipe
    from toolchain.train.stage import train_dense

    recipe = load_recipe(digits_recipe(folder), overrides)
    train_dense(recipe)
    prune_stage(recipe)
    return recipe
