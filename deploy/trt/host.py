"""What this host offers TensorRT: the library itself (imported lazily, with the `trt` extra named when it
is missing) and the GPU's name and compute capability, which an engine is tied to."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from cplitool.deploy.runners.cuda.base import TRT_EXTRA
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError


def require_tensorrt() -> ModuleType:
    """The `tensorrt` module, or a MissingDependencyError (exit 2) that says how to install it."""
    try:
        import tensorrt
    except ImportError as e:
        raise MissingDependencyError(
            f"TensorRT engines need the tensorrt Python package, which is not installed ({e}): {TRT_EXTRA}"
        ) from None
    return tensorrt


@dataclass(frozen=True)
class Host:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.6"


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(name, "major.minor") of CUDA device `device`, via torch or else cuda-python (both install as wheels)."""
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(device)
        return torch.cuda.get_device_name(device), f"{major}.{minor}"
    from cplitool.deploy.runners.cuda.cudart_io import call, import_cudart

    rt = import_cudart()
    try:
        props = call(rt, "cudaGetDeviceProperties", rt.cudaGetDeviceProperties(device))
    except CplitoolError as e:
        raise MissingDependencyError(f"no usable CUDA device (torch sees none; cuda-python: {e})") from None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


def current_host(device: int = 0) -> Host:
    trt = require_tensorrt()
    name, cc = gpu_identity(device)
    return Host(str(trt.__version__), name, cc)
