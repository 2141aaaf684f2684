"""Which runner times a model, from what the model is: an nn.Module or a cplitool artifact (PyTorch), an
ONNX file (ONNX Runtime) or a TensorRT engine. The one place that knows the model file suffixes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cplitool.deploy.runners.base import Runner
from cplitool.toolchain.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

ONNX_SUFFIX = ".onnx"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
BACKENDS = {"torch": "an nn.Module or a cplitool artifact", "onnxruntime": "an ONNX file", "tensorrt": "an engine"}


def is_engine(path: str | Path) -> bool:
    return Path(path).suffix.lower() in ENGINE_SUFFIXES


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


def backend_of(model: nn.Module | str | Path) -> str:
    """The backend that runs `model`: tensorrt for an engine, onnxruntime for an ONNX file, else torch."""
    if isinstance(model, str | Path):
        return "tensorrt" if is_engine(model) else "onnxruntime" if is_onnx(model) else "torch"
    return "torch"


def runner_for(
    model: nn.Module | str | Path, backend: str = "auto", device: str = "cpu", threads: int = 0, where: str = "bench"
) -> Runner:
    """The runner for `model` on `backend` ("auto": the one its kind needs) and `device` ("cpu", "cuda")."""
    kind = backend_of(model)
    if backend not in ("auto", *BACKENDS):
        raise UsageError(f"{where}: backend must be auto or one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend not in ("auto", kind):
        raise UsageError(f"{where}: backend {backend} runs {BACKENDS[backend]}, not {model}")
    if not isinstance(model, str | Path):
        from cplitool.deploy.runners.torch_runner import TorchRunner

        return TorchRunner(model, device=device, threads=threads)
    path = Path(model)
    if not path.is_file():
        raise UsageError(f"{where}: {path}: file not found")
    if kind == "onnxruntime":
        from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, provider="cpu" if device == "cpu" else "cuda", threads=threads)
    if kind == "tensorrt":
        from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path)
    from cplitool.deploy.runners.torch_runner import TorchRunner

    return TorchRunner(str(path), device=device, threads=threads)  # a cplitool artifact
