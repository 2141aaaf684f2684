"""Loading a built engine with its sidecar; an engine from another TensorRT version or GPU architecture is a
clear error before TensorRT is asked to deserialize it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cplitool.deploy.trt.host import current_host, require_tensorrt
from cplitool.deploy.trt.sidecar import Sidecar
from cplitool.toolchain.errors import CplitoolError, UsageError

__all__ = ["Sidecar", "load_engine"]


def load_engine(path: str | Path) -> tuple[Any, Sidecar]:
    """(tensorrt.ICudaEngine, Sidecar) for the engine at `path`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: TensorRT engine not found; build it with `cplitool export --trt`")
    sidecar = Sidecar.read(path)
    trt = require_tensorrt()
    sidecar.check_host(current_host(), path)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise CplitoolError(
            f"{path}: TensorRT {trt.__version__} could not deserialize the engine (truncated or corrupt?); "
            "rebuild it with `cplitool export --trt`"
        )
    return engine, sidecar
