"""`cplitool export`: checked ONNX files (FP32, FP16, INT8 Q/DQ) of the dense and pruned models, and with
--trt their TensorRT engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolchain.cli.common import JsonOpt, NoWaitOpt, SetOpt, load, out, print_json, wait_for_lock

TargetArg = Annotated[
    str | None, typer.Argument(help="recipe, run directory, or nothing for runs/latest", show_default=False)
]


def export(
    target: TargetArg = None,
    precision: Annotated[
        list[str] | None, typer.Option("--precision", "-p", help="fp32, fp16 or int8, repeatable (default: recipe)")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="dense or pruned, repeatable (default: both)")
    ] = None,
    trt: Annotated[bool, typer.Option("--trt", help="also build TensorRT engines (needs the trt extra)")] = False,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Export, compare with PyTorch on validation images, measure accuracy with ONNX Runtime; exit 1 if a check fails."""
    if trt:
        from deploy.trt.host import require_tensorrt

        require_tensorrt()  # at once, before any file is read or written
    from deploy.export.stage import export_stage
    from toolchain.rundir import RunDir

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
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
