"""`cplitool train` (dense training) and `cplitool eval` (accuracy of any artifact)."""

from __future__ import annotations

from typing import Annotated

import typer

from cplitool.cli.common import (
    ArtifactOpt,
    JsonOpt,
    NoWaitOpt,
    RecipeArg,
    SetOpt,
    load,
    out,
    print_json,
    wait_for_lock,
)


def train(
    recipe: RecipeArg,
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option("--force", help="train again even when dense.pt is up to date")] = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Train the dense model of RECIPE into its run directory (dense.pt); a killed run resumes.

    Skipped when the recipe names a dense checkpoint or dense.pt is up to date (--force trains again).
    Under torchrun it trains with DistributedDataParallel (multi-GPU and multi-node: docs/distributed.md)."""
    from cplitool.toolchain.distributed import distributed_session
    from cplitool.toolchain.train.stage import train_dense

    wait_for_lock(no_wait)
    r = load(recipe, set_)
    with distributed_session(r.run):
        train_dense(r, force=force)


def eval_(
    recipe: RecipeArg,
    set_: SetOpt = None,
    artifact: ArtifactOpt = "dense",
    as_json: JsonOpt = False,
) -> None:
    """Top-1, top-5 and loss of an artifact on the recipe's validation split; --artifact FILE.onnx runs an
    exported file on ONNX Runtime over the same images, so its top-1 compares with its artifact's."""
    from cplitool.toolchain.train.stage import evaluate_model

    r = load(recipe, set_)
    if artifact.endswith(".onnx"):  # deploy's runner, reached only through the CLI wiring
        from cplitool.deploy.export.checks import check_fits
        from cplitool.deploy.export.measure import OnnxModule
        from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
        from cplitool.toolchain.data.registry import recipe_input_shape

        check_fits(artifact, recipe_input_shape(r), f"{recipe} (model and data)")
        with OnnxRuntimeRunner(artifact, threads=r.run.threads) as runner:
            m = evaluate_model(r, artifact, OnnxModule(runner))
    else:
        m = evaluate_model(r, artifact)
    if as_json:
        print_json(m)
    else:
        out.print(
            f"{artifact}: top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}  ({m['samples']} samples)"
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(eval_)
