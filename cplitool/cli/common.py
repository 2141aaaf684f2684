"""Options and helpers shared by command modules: recipe loading with --set overrides, output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.recipe.load import merge, parse_assignment

out = Console()

RecipeArg = Annotated[Path, typer.Argument(help="recipe TOML file", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="override a recipe value: section.key=value (TOML syntax), repeatable"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of tables")]
ArtifactOpt = Annotated[str, typer.Option("--artifact", help="dense, pruned, finetuned or a file path")]
NoWaitOpt = Annotated[
    bool,
    typer.Option("--no-wait", help="exit 1 at once when another command is writing the run, instead of waiting"),
]


def wait_for_lock(no_wait: bool) -> None:
    """Apply --no-wait to the run directory lock this command takes."""
    from cplitool.toolchain.rundir import set_wait

    set_wait(not no_wait)


def load(recipe: Path, sets: list[str] | None = None, extra: dict[str, Any] | None = None) -> Recipe:
    overrides: dict[str, Any] = dict(extra or {})
    for s in sets or []:
        overrides = merge(overrides, parse_assignment(s))
    return load_recipe(recipe, overrides)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))
