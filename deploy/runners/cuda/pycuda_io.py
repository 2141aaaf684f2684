"""pycuda behind DeviceIO, with one retained primary context per process.

The primary context is the one the CUDA runtime (TensorRT, PyTorch) uses, so engines and buffers share
it. It is retained and pushed when the first pycuda I/O opens and popped when the last one closes, so
dense and pruned runners never stack two pushes, and their buffers are freed while it is current (pycuda
skips, with only a warning, a free whose context is not). It is never detached while in use: pycuda's
detach of a context that is not current pushes it first and leaves that push behind.
"""

from __future__ import annotations

from typing import Any

from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.cuda.base import TRT_EXTRA, Buffer, DeviceIO
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError
from cplitool.toolchain.install import install_hint


def import_pycuda() -> Any:
    """pycuda.driver, or a clear error naming the missing library and what installs it."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise MissingDependencyError(
            f"pycuda is not installed ({e}): {install_hint('pycuda')} (builds from source, needs a CUDA "
            f"toolkit), or use cuda-python instead: {TRT_EXTRA}"
        ) from None
    return cuda


class SharedContext:
    """The process's one pycuda context: retained once, pushed while any pycuda I/O is open."""

    def __init__(self) -> None:
        self.context: Any = None
        self.device_index: int | None = None
        self.users = 0

    def acquire(self, cuda: Any, device_index: int) -> None:
        if self.users and device_index != self.device_index:
            raise CplitoolError(
                f"CUDA device {device_index} requested while device {self.device_index} is in use: one per process"
            )
        if self.users == 0:
            if self.context is None or device_index != self.device_index:
                cuda.init()
                count = cuda.Device.count()
                if count <= device_index:
                    raise CplitoolError(f"CUDA device {device_index} not found ({count} visible)")
                self.context = cuda.Device(device_index).retain_primary_context()
                self.device_index = device_index
            self.context.push()
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.context.pop()


SHARED = SharedContext()


class PycudaIO(DeviceIO):
    name = "pycuda"

    @classmethod
    def availability(cls, device_index: int = 0) -> Availability:
        try:
            cuda = import_pycuda()
        except MissingDependencyError as e:
            return Availability(False, str(e))
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as e:
            return Availability(False, f"the CUDA driver is unusable from pycuda: {e}")
        return Availability(count > device_index, "" if count > device_index else "no CUDA device visible to pycuda")

    def _open(self) -> None:
        cuda = import_pycuda()
        try:
            SHARED.acquire(cuda, self.device_index)
        except cuda.Error as e:
            raise CplitoolError(f"CUDA driver error while opening device {self.device_index}: {e}") from None
        self.cuda = cuda
        self.stream = cuda.Stream()
        self.events = [cuda.Event() for _ in range(4)]

    def _close(self) -> None:
        self.stream.synchronize()
        self.stream, self.events = None, []  # destroyed now, while the context is still current
        SHARED.release()

    def _alloc(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        host = self.cuda.pagelocked_empty(shape, dtype)
        device = self.cuda.mem_alloc(max(host.nbytes, 1))
        return Buffer(host, int(device), device)

    def _free(self, buf: Buffer) -> None:
        buf.handle.free()
        allocation: Any = buf.host.base  # pycuda's page-locked host allocation behind the array
        allocation.free()

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def _record(self, event: int) -> None:
        self.events[event].record(self.stream)

    def _h2d(self, buf: Buffer) -> None:
        self.cuda.memcpy_htod_async(buf.handle, buf.host, self.stream)

    def _d2h(self, buf: Buffer) -> None:
        self.cuda.memcpy_dtoh_async(buf.host, buf.handle, self.stream)

    def _d2d(self, dst: Buffer, src: Buffer) -> None:
        self.cuda.memcpy_dtod_async(dst.handle, src.handle, src.host.nbytes, self.stream)

    def _wait(self, event: int) -> None:
        self.events[event].synchronize()

    def _elapsed(self, start: int, end: int) -> float:
        return float(self.events[start].time_till(self.events[end]))
