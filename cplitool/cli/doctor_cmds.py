"""`cplitool doctor`: one screen saying what this host can run (GPU, TensorRT, ONNX Runtime providers)."""

from __future__ import annotations

import typer

from cplitool.cli.common import JsonOpt, out, print_json


def doctor(as_json: JsonOpt = False) -> None:
    """Show Python, torch and CUDA, GPUs and driver, TensorRT, pycuda and cuda-python, ONNX Runtime, and for
    `export --trt` and each `bench` backend whether it runs here, with the install line that fixes it."""
    from cplitool.deploy.doctor import diagnose, render

    doc = diagnose()
    if as_json:
        print_json(doc)
        return
    for line in render(doc):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
