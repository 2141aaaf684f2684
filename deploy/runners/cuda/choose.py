"""The CUDA I/O library an engine runner uses: the first of pycuda, cuda-python and torch that works here.

A GPU host rarely has all three: pycuda (source-only, needs a CUDA toolkit to build), cuda-python (wheels)
and PyTorch's CUDA allocator and streams (wheels, already a dependency). The runner reports which one ran.
"""

from __future__ import annotations

from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.cuda.base import TRT_EXTRA, DeviceIO
from cplitool.deploy.runners.cuda.cudart_io import CudartIO
from cplitool.deploy.runners.cuda.pycuda_io import PycudaIO
from cplitool.deploy.runners.cuda.torch_io import TorchIO
from cplitool.toolchain.errors import MissingDependencyError


def io_classes() -> list[type[DeviceIO]]:
    """In order of preference: pycuda where the project always promised it, then the two wheel-installed ones."""
    return [PycudaIO, CudartIO, TorchIO]


def checked(cls: type[DeviceIO], device_index: int) -> Availability:
    """cls.availability, where a library that fails in an unforeseen way is 'not available, because ...'."""
    try:
        return cls.availability(device_index)
    except Exception as e:
        return Availability(False, f"{type(e).__name__}: {e}")


def io_availability(device_index: int = 0) -> dict[str, Availability]:
    """Each I/O library's availability, by name (for `cplitool doctor` and skip reasons)."""
    return {cls.name: checked(cls, device_index) for cls in io_classes()}


def choose_io(device_index: int = 0) -> DeviceIO:
    """The first I/O library that works here, or a MissingDependencyError naming why each one does not."""
    reasons = []
    for cls in io_classes():
        check = checked(cls, device_index)
        if check.ok:
            return cls(device_index)
        reasons.append(f"{cls.name}: {check.reason}")
    raise MissingDependencyError(f"no CUDA I/O library works here ({'; '.join(reasons)}): {TRT_EXTRA}")
