"""`cplitool export`: checked ONNX files (FP32, FP16, INT8 Q/DQ) of the dense and pruned models, and with
--trt their TensorRT engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cplitool.cli.common import JsonOpt, NoWaitOpt, SetOpt, load, out, print_json, wait_for_lock
from cplitool.cli.options import ShapeOpt, parse_shape
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.tables import fitted

TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="recipe, run directory, or nothing for runs/latest; or a checkpoint file (.pt, .pth): a cplitool "
        "artifact, or a state dict with --model NAME",
        show_default=False,
    ),
]
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")


def export(
    target: TargetArg = None,
    precision: Annotated[
        list[str] | None, typer.Option("--precision", "-p", help="fp32, fp16 or int8, repeatable (default: recipe)")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="a run: dense or pruned, repeatable (default: both); a state dict file: its architecture",
        ),
    ] = None,
    trt: Annotated[bool, typer.Option("--trt", help="also build TensorRT engines (needs the trt extra)")] = False,
    set_: SetOpt = None,
    input_shape: ShapeOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="a checkpoint file: the ONNX file to write")
    ] = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Export, compare with PyTorch on validation images, measure accuracy with ONNX Runtime; exit 1 if a check fails.

    A checkpoint file exports on its own: `cplitool export pruned.pt`, or `cplitool export weights.pt --model
    resnet56`; it is checked against PyTorch on random inputs and written beside the checkpoint."""
    if target and Path(target).suffix.lower() in CHECKPOINT_SUFFIXES:
        export_checkpoint(Path(target), model, precision, input_shape, output, trt or bool(set_), as_json)
        return
    if input_shape or output:
        raise UsageError("export: --input-shape and --output are for a checkpoint file (.pt, .pth), not a recipe")
    if trt:
        from cplitool.deploy.trt.host import require_tensorrt

        require_tensorrt()  # at once, before any file is read or written
    from cplitool.deploy.export.stage import export_stage
    from cplitool.toolchain.rundir import RunDir

    wait_for_lock(no_wait)
    if target and target.endswith(".toml"):
        recipe = load(Path(target), set_)
        run = RunDir.open(recipe)
    else:
        run = RunDir.resolve(target)
        recipe = load(run.recipe().source, set_)
    entry = export_stage(recipe, run, model, precision, trt)
    if as_json:
        print_json(entry)
        return
    table = Table(title=f"{run.path / 'onnx'}")
    for col in ("model", "precision", "top-1 %", "max |a-b|", "agree %", "status"):
        table.add_column(col, justify="left" if col in ("model", "precision", "status") else "right")
    for f in entry.get("files", []):
        table.add_row(
            f["model"],
            f["precision"],
            f"{f['accuracy']['top1']:.2f}",
            f"{f['parity']['abs_err']['max']:.1e}",
            f"{f['parity']['top1_agreement']:.1f}",
            f["status"] + (" +engine" if f.get("engine") else ""),
        )
    out.print(fitted(table))


def export_checkpoint(
    source: Path,
    model: list[str] | None,
    precision: list[str] | None,
    input_shape: str | None,
    output: Path | None,
    run_options: bool,
    as_json: bool,
) -> None:
    from cplitool.deploy.export.files import export_file

    if run_options or (model and len(model) > 1):
        raise UsageError(f"export {source}: a checkpoint takes one --model NAME and no --trt or --set (run options)")
    files = export_file(source, model[0] if model else None, parse_shape(input_shape), precision, output)
    if as_json:
        print_json([{"path": str(f.path), "precision": f.precision, "parity": f.parity.to_dict()} for f in files])
        return
    table = Table(title=f"{source} -> ONNX, checked against PyTorch on random inputs")
    for col in ("file", "precision", "max |a-b|", "top-1 agree %", "status"):
        table.add_column(col, justify="right" if col in ("max |a-b|", "top-1 agree %") else "left")
    for f in files:
        status = "ok" if f.parity.passed else "failed"
        table.add_row(str(f.path), f.precision, f"{f.parity.abs_err.max:.1e}", f"{f.parity.top1_agreement:.1f}", status)
    out.print(fitted(table))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
