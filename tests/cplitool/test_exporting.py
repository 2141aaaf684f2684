"""cplitool.export: a checked ONNX file and its parity with PyTorch, in each precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cplitool
from cplitool.deploy.export.measure import onnx_logits
from cplitool.exporting import tolerances
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.models import create_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("quick_vgg", 10).eval()


def test_fp32_file_matches_pytorch(tmp_path: Path, model: torch.nn.Module) -> None:
    result = cplitool.export(model, tmp_path / "m.onnx", example_input=torch.randn(1, 1, 8, 8))
    assert result.passed and result.parity.images == 16 and result.path.is_file()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        ref = model(x).numpy()
    assert abs(onnx_logits(result.path, x.numpy(), 5) - ref).max() < 1e-4


def test_fp16_uses_the_fp16_tolerances(tmp_path: Path, model: torch.nn.Module) -> None:
    result = cplitool.export(model, tmp_path / "h.onnx", input_shape=(1, 8, 8), precision="fp16")
    assert (result.parity.atol, result.parity.rtol) == tolerances("fp16") == (0.01, 0.01)
    assert result.passed


def test_a_failed_parity_check_raises(tmp_path: Path, model: torch.nn.Module) -> None:
    """Break caught: a parity result that is computed but never enforced."""
    with pytest.raises(CplitoolError, match="parity check failed"):
        cplitool.export(model, tmp_path / "f.onnx", input_shape=(1, 8, 8), atol=0.0, rtol=0.0)


def test_usage_errors(tmp_path: Path, model: torch.nn.Module) -> None:
    with pytest.raises(UsageError, match="int8 needs calibration"):
        cplitool.export(model, tmp_path / "q.onnx", input_shape=(1, 8, 8), precision="int8")
    with pytest.raises(UsageError, match="precision must be one of"):
        cplitool.export(model, tmp_path / "q.onnx", input_shape=(1, 8, 8), precision="bf16")
