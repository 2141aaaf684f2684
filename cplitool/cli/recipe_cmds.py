"""`cplitool init` (a starting recipe), `cplitool check` (validate and print the resolved recipe),
`cplitool info` (per-layer counts) and `cplitool models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cplitool.cli.common import ArtifactOpt, JsonOpt, RecipeArg, SetOpt, load, out, print_json
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.dump import dumps
from cplitool.toolchain.tables import fitted


def init(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="run name; the recipe is written to NAME.toml", show_default=False)
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="NAME",
            help="registered architecture (cplitool models) or import path 'package.module:Callable' "
            "(default: the template's)",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str, typer.Option("--data", metavar="KIND", help="template: digits (offline), cifar10 or imagefolder")
    ] = "digits",
    out_path: Annotated[
        Path | None, typer.Option("--out", metavar="PATH", help="where to write (default: NAME.toml)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starting recipe from a template shipped with cplitool."""
    from cplitool.toolchain.recipe.init import write_recipe

    path = write_recipe(name, model, data, out_path, force)
    typer.echo(f"wrote {path}: next `cplitool check {path}`, then `cplitool run {path}`")


def check(
    recipe: Annotated[Path | None, typer.Argument(help="recipe TOML file", show_default=False)] = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    reference: Annotated[
        bool, typer.Option("--reference", help="print the reference of every recipe key (Markdown) instead")
    ] = False,
) -> None:
    """Validate RECIPE and print it resolved: every default filled in, every path absolute."""
    if reference:
        from cplitool.toolchain.recipe.reference import render_reference

        typer.echo(render_reference(), nl=False)
        return
    if recipe is None:
        raise UsageError("check: missing RECIPE (or pass --reference for the key reference)")
    r = load(recipe, set_)
    if r.model.checkpoint:
        from cplitool.toolchain.artifacts import check_dense

        check_dense(r)
    if as_json:
        print_json({"source": str(r.source), "run_dir": str(r.run_dir), **r.to_dict()})
        return
    typer.echo(f"# {r.source}: valid; run directory {r.run_dir}")  # plain text: the output is valid TOML
    typer.echo(dumps(r.to_dict()))


def info(
    recipe: RecipeArg,
    set_: SetOpt = None,
    artifact: ArtifactOpt = "dense",
    as_json: JsonOpt = False,
) -> None:
    """Per-layer channels, MACs and parameters of the recipe's model, counted by torch's flop counter.

    The input is one sample as the recipe's data feeds it (data.image_size, data.clip_len, synthetic shape).
    """
    import torch

    from cplitool.toolchain.artifacts import resolve_model
    from cplitool.toolchain.counting import count_model
    from cplitool.toolchain.data.registry import recipe_input_shape
    from cplitool.toolchain.models.source import ModelSource
    from cplitool.toolchain.rundir import RunDir

    r = load(recipe, set_)
    if artifact == "dense" and not r.model.checkpoint:
        with torch.device("meta"):  # counting needs shapes only: no memory, no initialisation
            model = ModelSource.of(r).build()
    else:
        model, _, _ = resolve_model(r, RunDir(r.run_dir), artifact)  # reads only
    shape = recipe_input_shape(r)
    counts = count_model(model, shape)
    if as_json:
        print_json(
            {
                "model": r.model.name,
                "input_shape": shape,
                "macs": counts.macs,
                "params": counts.params,
                "layers": [vars(x) for x in counts.layers],
            }
        )
        return
    table = Table(
        title=f"{r.model.name} ({artifact}), input {shape}: {counts.macs / 1e6:,.2f} M MACs, {counts.params / 1e6:,.3f} M params"
    )
    for col in ("layer", "type", "in", "out", "MACs (M)", "params (K)", "% MACs"):
        table.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for x in counts.layers:
        table.add_row(
            x.name,
            x.kind,
            str(x.in_channels),
            str(x.out_channels),
            f"{x.macs / 1e6:,.2f}",
            f"{x.params / 1e3:,.1f}",
            f"{100 * x.macs / max(counts.macs, 1):.1f}",
        )
    out.print(fitted(table))


def models(as_json: JsonOpt = False) -> None:
    """List the registered architectures with their input shapes (model.name also takes an import path)."""
    from cplitool.toolchain.models.registry import get_spec, list_models

    specs = [get_spec(n) for n in list_models()]
    if as_json:
        print_json([{"name": s.name, "input_shape": s.input_shape, "description": s.description} for s in specs])
        return
    table = Table(
        title="registered models",
        caption="model.name also takes an import path 'package.module:callable' with model.input_shape",
    )
    for col in ("name", "input", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, "x".join(map(str, s.input_shape)), s.description)
    out.print(fitted(table))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("check")(check)
    app.command("info")(info)
    app.command("models")(models)
