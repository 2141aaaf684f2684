"""runner_for: the runner a model's kind needs, and a one-line usage error for a mismatch or a missing file."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner
from cplitool.deploy.runners.select import backend_of, runner_for
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.deploy.runners.torch_runner import TorchRunner
from cplitool.toolchain.errors import UsageError


@pytest.mark.parametrize(
    ("name", "backend"),
    [("m.onnx", "onnxruntime"), ("m.ONNX", "onnxruntime"), ("m.engine", "tensorrt"), ("m.plan", "tensorrt"),
     ("m.trt", "tensorrt"), ("pruned.pt", "torch")],
)  # fmt: skip
def test_the_backend_follows_the_file_kind(name: str, backend: str) -> None:
    assert backend_of(name) == backend


def test_each_kind_gets_its_runner(tmp_path: Path) -> None:
    for name in ("m.onnx", "m.engine", "m.pt"):
        (tmp_path / name).write_bytes(b"")
    assert isinstance(runner_for(tmp_path / "m.onnx", threads=1), OnnxRuntimeRunner)
    assert isinstance(runner_for(tmp_path / "m.engine", "tensorrt"), TensorRTRunner)
    assert isinstance(runner_for(tmp_path / "m.pt"), TorchRunner)
    assert isinstance(runner_for(nn.Linear(2, 2), "torch"), TorchRunner)


@pytest.mark.parametrize(
    ("backend", "model", "message"),
    [("tensorrt", "m.onnx", "backend tensorrt runs an engine, not "), ("tvm", "m.onnx", "backend must be auto or"),
     ("auto", "missing.onnx", "missing.onnx: file not found")],
)  # fmt: skip
def test_mismatches_are_usage_errors(tmp_path: Path, backend: str, model: str, message: str) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(UsageError, match=message):
        runner_for(tmp_path / model, backend)
