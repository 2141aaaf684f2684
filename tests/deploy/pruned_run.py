"""A run directory with a dense and a pruned quick_vgg artifact (random weights) and, optionally, their
ONNX files listed in an export manifest entry: what the bench, regress and report tests need."""

from __future__ import annotations

from pathlib import Path

import torch

from cplitool.toolchain.artifacts import ModelInfo, save_artifact
from cplitool.toolchain.models.vgg import VGG
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir

RECIPE = """
[run]
name = "benchtest"
threads = 1
[model]
name = "quick_vgg"
[data]
name = "digits"
[bench]
batches = [2]
backends = ["torch", "onnxruntime", "tensorrt"]
warmup_ms = 5.0
min_duration_s = 0.02
min_iters = 3
repeats = 2
"""
PRUNED_CFG: list[int | str] = [16, 16, "M", 32, 32, "M", 64]


def make_run(folder: Path, onnx: bool = False) -> tuple[Recipe, RunDir]:
    """Write the recipe and the artifacts under `folder`; record train, prune and (optionally) export."""
    path = folder / "bench.toml"
    path.write_text(RECIPE)
    recipe = load_recipe(path)
    run = RunDir.for_recipe(recipe)
    torch.manual_seed(0)
    models = {"dense": VGG([32, 32, "M", 64, 64, "M", 128], in_channels=1), "pruned": VGG(PRUNED_CFG, in_channels=1)}
    for (name, model), stage, top1 in zip(models.items(), ("train", "prune"), (90.0, 80.0), strict=True):
        art = save_artifact(run.file(f"{name}.pt"), model.eval(), ModelInfo("quick_vgg", 10, metrics={"top1": top1}))
        run.record(stage, art, "test", {"top1": top1})
    if onnx:
        files = []
        for name, model in models.items():
            out = run.file(f"{name}.fp32.onnx")
            torch.onnx.export(
                model.eval(),
                (torch.zeros(1, 1, 8, 8),),
                str(out),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
            files.append({"model": name, "precision": "fp32", "path": out.name, "status": "ok"})
        run.record("export", None, "test", {}, files=files)
    return recipe, run
