"""Export + FP32 parity for every registered architecture (small inputs, random weights), both exporters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from cplitool.deploy.export.checks import load_checked
from cplitool.deploy.export.measure import onnx_logits
from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.export.parity import compare
from cplitool.toolchain.errors import CplitoolError
from cplitool.toolchain.models import create_model, list_models
from cplitool.toolchain.recipe.sections import ExportSection

# name -> (model kwargs, per-sample input shape); small inputs keep the file fast.
CASES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "quick_vgg": ({}, (1, 8, 8)),
    "vgg16_cifar": ({}, (3, 32, 32)),
    "resnet20": ({}, (3, 32, 32)),
    "resnet56": ({}, (3, 32, 32)),
    "resnet110": ({}, (3, 32, 32)),
    "resnet18": ({}, (3, 32, 32)),
    "resnet34": ({}, (3, 32, 32)),
    "resnet50": ({}, (3, 64, 64)),
    "vgg16_bn": ({}, (3, 32, 32)),  # 7x7 adaptive pool on a 1x1 map: exported through the pool rewrite
    "c3d": ({"width": 0.125, "fc_width": 64}, (3, 4, 32, 32)),  # 5-D input, (1, 4, 4) pool on a 1x1x1 map
}
SLOW = {"vgg16_bn", "resnet110", "resnet56", "resnet34"}  # 100+ M parameters, or deep: covered by their smaller kin


def roundtrip(name: str, folder: Path, exporter: str = "torchscript") -> None:
    kwargs, shape = CASES[name]
    torch.manual_seed(0)
    model = create_model(name, 10, **kwargs).eval()
    path = folder / f"{name}.onnx"
    info = export_onnx(model, shape, path, opset=17, exporter=exporter, label=name)
    proto = load_checked(path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(shape)  # dynamic batch, fixed sample
    assert info.opset == next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    x = torch.randn(3, *shape)  # a batch size the export never saw
    with torch.no_grad():
        ref = model(x).numpy()
    cfg = ExportSection()
    report = compare(ref, onnx_logits(path, x.numpy(), batch=3, threads=1), cfg.atol_fp32, cfg.rtol_fp32)
    assert report.passed, f"{name}: {report.summary()}"
    assert report.top1_agreement == 100.0


def test_every_registered_architecture_has_a_case() -> None:
    assert sorted(CASES) == list_models()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_export_and_fp32_parity(name: str, tmp_path: Path) -> None:
    roundtrip(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quick_vgg", "c3d"])
def test_dynamo_exporter(name: str, tmp_path: Path) -> None:
    roundtrip(name, tmp_path, exporter="dynamo")


def test_export_failure_names_the_model(tmp_path: Path) -> None:
    class Unexportable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.eigvals(x[:, 0]).real  # no ONNX counterpart

    with pytest.raises(CplitoolError, match=r"odd: torch.onnx export \(torchscript exporter"):
        export_onnx(Unexportable(), (1, 4, 4), tmp_path / "odd.onnx", label="odd")
    assert not (tmp_path / "odd.onnx").exists()  # nothing half-written


def test_simplify_off_keeps_a_valid_graph(tmp_path: Path) -> None:
    info = export_onnx(create_model("quick_vgg", 10), (1, 8, 8), tmp_path / "q.onnx", simplify=False)
    assert not info.simplified
    assert isinstance(onnx.load(str(tmp_path / "q.onnx")), onnx.ModelProto)
    assert np.isfinite(onnx_logits(tmp_path / "q.onnx", np.zeros((2, 1, 8, 8), np.float32), 2)).all()


def test_static_batch_export_runs_in_chunks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("quick_vgg", 10).eval()
    export_onnx(model, (1, 8, 8), tmp_path / "static.onnx", dynamic_batch=False)
    dims = load_checked(tmp_path / "static.onnx").graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        ref = model(x).numpy()
    assert compare(ref, onnx_logits(tmp_path / "static.onnx", x.numpy(), batch=3, threads=1), 1e-4, 1e-4).passed
