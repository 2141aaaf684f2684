"""A quick_vgg-on-digits run directory for tests of fine-tuning and of `cplitool run`: dense training plus
the real prune stage with `prune.method = "l1"` (data-free selection, so it takes well under a second)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cplitool.toolchain.recipe import Recipe
from tests.conftest import digits_recipe_text

STAGES = """
[train]
epochs = 2
lr = 0.05
schedule = "onecycle"
[prune]
method = "l1"
macs_keep = 0.5
[finetune]
epochs = 2
lr = 0.01
max_steps = 8
"""


def digits_recipe(folder: Path) -> Path:
    """A quick_vgg-on-digits recipe (dense training ~2 s, fine-tuning ~1 s per epoch on one core)."""
    path = folder / "ft.toml"
    path.write_text(digits_recipe_text("ft", STAGES))
    return path


def pruned_run(folder: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Dense training plus the prune stage: a run directory ready for fine-tuning."""
    from cplitool.toolchain.prune.stage import prune_stage
    from cplitool.toolchain.recipe import load_recipe
    from cplitool.toolchain.train.stage import train_dense

    recipe = load_recipe(digits_recipe(folder), overrides)
    train_dense(recipe)
    prune_stage(recipe)
    return recipe
