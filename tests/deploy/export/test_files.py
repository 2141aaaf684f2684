from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cplitool.deploy.export.files import export_file
from cplitool.deploy.export.metadata import read_metadata
from cplitool.toolchain.artifacts import ModelInfo, save_artifact
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models.vgg import VGG
from tests.conftest import digits_recipe_text, write_recipe
from tests.deploy.pruned_run import PRUNED_CFG


def pruned_vgg() -> VGG:
    torch.manual_seed(0)
    return VGG(PRUNED_CFG, in_channels=1).eval()  # quick_vgg's layout at pruned widths


def test_an_artifact_exports_beside_itself_with_its_provenance(in_tmp: Path) -> None:
    source = save_artifact(in_tmp / "pruned.pt", pruned_vgg(), ModelInfo("quick_vgg", 10))
    (fp32, fp16) = export_file(source, precisions=["fp32", "fp16"])
    assert fp32.path == in_tmp / "pruned.fp32.onnx" and fp16.path == in_tmp / "pruned.fp16.onnx"
    assert fp32.parity.passed and fp16.parity.passed
    meta = read_metadata(fp32.path)
    assert meta["cplitool.arch"] == "quick_vgg" and meta["cplitool.status"] == "done"
    assert int(meta["cplitool.macs"]) > 0 and "random inputs" in meta["cplitool.parity"]


def test_a_state_dict_needs_its_architecture(in_tmp: Path) -> None:
    path = in_tmp / "weights.pt"
    torch.save(pruned_vgg().state_dict(), path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="pass --model NAME"):
        export_file(path)
    (out,) = export_file(path, "quick_vgg", output=in_tmp / "w.onnx")
    assert out.path == in_tmp / "w.onnx" and out.parity.passed  # pruned widths sized from the weights
    assert path.read_bytes() == before  # the user's checkpoint is never modified
    with pytest.raises(UsageError, match="needs calibration images"):
        export_file(path, "quick_vgg", precisions=["int8"])


def test_onnx_file_evaluates_to_its_artifacts_top1(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """`eval --artifact X.onnx` runs the file over the very images `--artifact X.pt` sees: catches a file run on
    other images or its outputs misaligned with the labels. The model is trained for two epochs, so its
    top-1 is far from chance and a misalignment shows."""
    recipe = write_recipe(in_tmp, digits_recipe_text("evalonnx", "[train]\nepochs = 2\nlr = 0.05\n"))
    assert cli("train", str(recipe)).code == 0
    source = in_tmp / "runs/evalonnx/dense.pt"
    assert cli("export", str(source)).code == 0
    results = {}
    for artifact in (str(source), str(in_tmp / "runs/evalonnx/dense.fp32.onnx")):
        r = cli("eval", str(recipe), "--artifact", artifact, "--json")
        assert r.code == 0, r.err
        results[artifact] = json.loads(r.out)
    pt, onnx = results.values()
    assert pt["samples"] == onnx["samples"] == 360 and pt["top1"] > 50
    assert pt["top1"] == onnx["top1"] and pt["top5"] == onnx["top5"]
    assert onnx["loss"] == pytest.approx(pt["loss"], rel=1e-4)
