"""`cplitool finetune` (distillation fine-tuning of the pruned model) and `cplitool run` (every stage).

The stage table lives here, in a command module, because it names deploy's entry points: toolchain's
own modules never import deploy. Entry points are imported only when their stage runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cplitool.cli.common import JsonOpt, NoWaitOpt, RecipeArg, SetOpt, load, out, print_json, wait_for_lock
from cplitool.toolchain.pipeline.runner import Outcome, StageSpec
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import PINNED_RECIPE, RunDir

BASE = ("run", "model", "data")


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "train",
        "cplitool.toolchain.train.stage:train_dense",
        (*BASE, "train"),
        invoke=lambda fn, r, run, redo: fn(r, force=redo),
        skip_reason=lambda r: f"dense checkpoint given: {r.model.checkpoint}" if r.model.checkpoint else None,
    ),
    StageSpec(
        "prune", "cplitool.toolchain.prune.stage:prune_stage", (*BASE, "prune"), inputs=("train",), needs=("train",)
    ),
    StageSpec(
        "finetune",
        "cplitool.toolchain.finetune.stage:finetune_stage",
        (*BASE, "finetune"),
        inputs=("train", "prune"),
        needs=("prune",),
        invoke=lambda fn, r, run, redo: fn(r, force=redo),
    ),
    StageSpec(
        "export",
        "cplitool.deploy.export.stage:export_stage",
        (*BASE, "export", "trt"),
        inputs=("train", "prune", "finetune"),
        needs=("prune",),
        invoke=lambda fn, r, run, redo: fn(r, run),
    ),
    StageSpec(
        "bench",
        "cplitool.deploy.bench.stage:bench_stage",
        (*BASE, "bench", "trt"),
        inputs=("export",),
        needs=("export",),
        invoke=lambda fn, r, run, redo: fn(r, run),
    ),
    StageSpec(
        "report",
        "cplitool.deploy.report:write_report",
        ("bench",),
        inputs=("train", "prune", "finetune", "export", "bench"),
        needs=("bench",),
        invoke=lambda fn, r, run, redo: fn(run),
    ),
)
STAGE_NAMES = [s.name for s in STAGES]


def finetune(
    recipe: RecipeArg,
    set_: SetOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="fine-tune again even when finetuned.pt is up to date")
    ] = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Fine-tune the pruned model of RECIPE with distillation from the dense one; a killed run resumes from
    its last finished epoch. Under torchrun it trains with DistributedDataParallel (docs/distributed.md)."""
    from cplitool.toolchain.distributed import distributed_session
    from cplitool.toolchain.finetune.stage import finetune_stage

    wait_for_lock(no_wait)
    r = load(recipe, set_)
    with distributed_session(r.run):
        finetune_stage(r, force=force)


def load_for_run(recipe: Path, sets: list[str] | None, smoke: bool) -> Recipe:
    """The recipe with --set and --smoke applied; with any override it is also written out resolved
    (<run dir>/recipe.toml) and reloaded from there, so stages that re-read the run's recipe see it."""
    if not (smoke or sets):
        return load(recipe, sets)
    from cplitool.toolchain.io import atomic_write
    from cplitool.toolchain.pipeline.smoke import load_smoke
    from cplitool.toolchain.recipe import load_recipe
    from cplitool.toolchain.recipe.dump import dumps

    r = (
        load_smoke(recipe.expanduser().resolve(), lambda o: load(recipe, sets, extra=o))
        if smoke
        else load(recipe, sets)
    )
    flags = (["--smoke"] if smoke else []) + [f"--set {s}" for s in sets or []]
    text = f"# {r.source} with {' '.join(flags)}, resolved\n{dumps(r.to_dict())}"
    RunDir.open(r)  # under the run's lock: another command may be reading the pinned recipe
    pinned = atomic_write(r.run_dir / PINNED_RECIPE, lambda p: p.write_text(text))
    return load_recipe(pinned)


def show_outcome(o: Outcome) -> None:
    from cplitool.toolchain.paths import shown
    from cplitool.toolchain.progress import console

    style = {"ran": "green", "up to date": "cyan", "skipped": "cyan"}.get(o.status, "yellow")
    took = f" in {o.seconds:.1f} s" if o.status == "ran" else ""
    detail = shown(o.detail) if o.status in ("ran", "up to date") else o.detail  # the stage's artifact
    console.print(f"[{style}]{o.stage}: {o.status}{took}[/{style}]  {detail}", highlight=False)


def run(
    recipe: RecipeArg,
    set_: SetOpt = None,
    from_: Annotated[
        str | None, typer.Option("--from", help=f"redo this stage and every later one: {', '.join(STAGE_NAMES)}")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="redo every stage, up to date or not")] = False,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="a few images and steps (synthetic data where the real data is absent)")
    ] = False,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Run every stage of RECIPE (train, prune, finetune, export, bench, report), skipping up-to-date ones;
    an interrupted run resumes at the stage it stopped in. Ends with the dense-versus-pruned table."""
    from cplitool.cli.run_table import render, summarize
    from cplitool.toolchain.distributed import launched_world_size
    from cplitool.toolchain.errors import UsageError
    from cplitool.toolchain.pipeline.runner import run_pipeline

    if launched_world_size() > 1:
        raise UsageError(
            "`cplitool run` runs single-process stages too; under torchrun launch `train` and `finetune` "
            "separately, then `cplitool run` (it skips the finished stages)"
        )
    wait_for_lock(no_wait)
    r = load_for_run(recipe, set_, smoke)
    outcomes = run_pipeline(r, STAGES, from_, force, on_outcome=None if as_json else show_outcome)
    run_dir = RunDir(r.run_dir)
    summary = summarize(r, run_dir)
    if as_json:
        stages: list[dict[str, Any]] = [
            {"stage": o.stage, "status": o.status, "seconds": o.seconds, "detail": o.detail} for o in outcomes
        ]
        print_json({"run_dir": str(run_dir.path), "stages": stages, "summary": vars(summary)})
        return
    out.print(render(summary, f"{r.run.name}: dense vs pruned ({run_dir.path})"))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    app.command("run")(run)
