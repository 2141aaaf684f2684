"""pycuda plumbing for engine runners: page-locked host buffers, device allocations, one stream and the
four CUDA events that split an inference into H2D copy, compute and D2H copy.

Kept apart from TensorRT so a GPU host with pycuda but no TensorRT can still exercise it (gpu_check).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.runners.device_times import DeviceTimes
from toolchain.errors import CplitoolError, MissingDependencyError

TRT_EXTRA = "pip install 'cplitool[trt]' on a GPU host (TensorRT and pycuda wheels come from NVIDIA's index)"


def import_pycuda() -> Any:
    """pycuda.driver, or a clear error naming the missing library and the extra that installs it."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise MissingDependencyError(f"pycuda is not installed ({e}): {TRT_EXTRA}") from None
    return cuda


@dataclass
class Buffer:
    """A page-locked host array and the device allocation of the same size."""

    host: np.ndarray
    device: Any

    @property
    def address(self) -> int:
        return int(self.device)


class CudaIO:
    """Owns a retained primary context on one device, a stream, timing events and buffers."""

    def __init__(self, device_index: int = 0) -> None:
        self.device_index = device_index
        self.buffers: list[Buffer] = []
        self.context: Any = None

    def open(self) -> None:
        cuda = import_pycuda()
        try:
            cuda.init()
            if cuda.Device.count() <= self.device_index:
                raise CplitoolError(f"CUDA device {self.device_index} not found ({cuda.Device.count()} visible)")
            self.context = cuda.Device(self.device_index).retain_primary_context()
        except cuda.Error as e:
            raise CplitoolError(f"CUDA driver error while opening device {self.device_index}: {e}") from None
        self.context.push()
        self.cuda = cuda
        self.stream = cuda.Stream()
        self.events = [cuda.Event() for _ in range(4)]

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        host = self.cuda.pagelocked_empty(shape, dtype)
        buf = Buffer(host, self.cuda.mem_alloc(max(host.nbytes, 1)))
        self.buffers.append(buf)
        return buf

    def run(
        self, inputs: list[tuple[Buffer, np.ndarray]], launch: Callable[[int], None], outputs: list[Buffer]
    ) -> DeviceTimes:
        """Copy inputs in, launch(stream handle), copy outputs back; event-timed, then synchronised."""
        cuda, s = self.cuda, self.stream
        for buf, array in inputs:
            buf.host[...] = array
        e0, e1, e2, e3 = self.events
        t0 = time.perf_counter()
        e0.record(s)
        for buf, _ in inputs:
            cuda.memcpy_htod_async(buf.device, buf.host, s)
        e1.record(s)
        launch(s.handle)
        e2.record(s)
        for buf in outputs:
            cuda.memcpy_dtoh_async(buf.host, buf.device, s)
        e3.record(s)
        enqueue_ms = (time.perf_counter() - t0) * 1e3
        e3.synchronize()
        return DeviceTimes(enqueue_ms, e0.time_till(e1), e1.time_till(e2), e2.time_till(e3))

    def copy_device(self, dst: Buffer, src: Buffer) -> None:
        """Device-to-device copy on the stream: the stand-in 'compute' when checking the plumbing itself."""
        self.cuda.memcpy_dtod_async(dst.device, src.device, src.host.nbytes, self.stream)

    def release_buffers(self) -> None:
        for buf in self.buffers:
            buf.device.free()
        self.buffers.clear()

    def close(self) -> None:
        if self.context is None:
            return
        self.stream.synchronize()
        self.release_buffers()
        self.context.pop()
        self.context.detach()
        self.context = None
