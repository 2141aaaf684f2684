"""Host and device memory, one stream and four timing events for engine runners, behind one interface.

Each of pycuda_io, cudart_io and torch_io implements it for one library; choose.py picks one. `run` is
shared: events around the H2D copies, the launch and the D2H copies, as trtexec splits an inference into
H2D, GPU compute and D2H.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.device_times import DeviceTimes
from cplitool.toolchain.install import install_hint

# The pip line fits how cplitool was installed (editable clone or wheel), see toolchain/install.py.
TRT_EXTRA = f"{install_hint('trt')} (tensorrt and cuda-python wheels) on a host with an NVIDIA GPU and driver"


@dataclass
class Buffer:
    """A page-locked host array, the device address of an allocation of the same size, and what frees both."""

    host: np.ndarray
    address: int
    handle: Any


class DeviceIO(ABC):
    """Lifecycle: open() once, buffer() any number of times, release_buffers() to rebind, close() once."""

    name = "abstract"

    def __init__(self, device_index: int = 0) -> None:
        self.device_index = device_index
        self.buffers: list[Buffer] = []
        self.is_open = False

    @classmethod
    @abstractmethod
    def availability(cls, device_index: int = 0) -> Availability:
        """Whether the library imports and sees the device (cheap; allocates nothing)."""

    @abstractmethod
    def _open(self) -> None:
        """Make the device current, create the stream and four timing events."""

    @abstractmethod
    def _close(self) -> None:
        """Destroy the events and the stream; give the device back."""

    @abstractmethod
    def _alloc(self, shape: tuple[int, ...], dtype: Any) -> Buffer: ...

    @abstractmethod
    def _free(self, buf: Buffer) -> None: ...

    @property
    @abstractmethod
    def stream_handle(self) -> int:
        """The stream as an integer handle (what TensorRT's execute_async_v3 takes)."""

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def _record(self, event: int) -> None: ...

    @abstractmethod
    def _h2d(self, buf: Buffer) -> None: ...

    @abstractmethod
    def _d2h(self, buf: Buffer) -> None: ...

    @abstractmethod
    def _d2d(self, dst: Buffer, src: Buffer) -> None: ...

    @abstractmethod
    def _wait(self, event: int) -> None: ...

    @abstractmethod
    def _elapsed(self, start: int, end: int) -> float: ...

    def open(self) -> None:
        self._open()
        self.is_open = True

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        buf = self._alloc(tuple(int(d) for d in shape), np.dtype(dtype))
        self.buffers.append(buf)
        return buf

    def release_buffers(self) -> None:
        """Free every buffer (after the stream has drained); a failed free is an error, never skipped."""
        if self.buffers:
            self.synchronize()
        while self.buffers:
            self._free(self.buffers.pop())

    def close(self) -> None:
        if not self.is_open:
            return
        try:
            self.release_buffers()
        finally:
            self.is_open = False
            self._close()

    def run(
        self, inputs: list[tuple[Buffer, np.ndarray]], launch: Callable[[int], None], outputs: list[Buffer]
    ) -> DeviceTimes:
        """Copy inputs in, launch(stream handle), copy outputs back; event-timed, then synchronised."""
        for buf, array in inputs:
            buf.host[...] = array
        t0 = time.perf_counter()
        self._record(0)
        for buf, _ in inputs:
            self._h2d(buf)
        self._record(1)
        launch(self.stream_handle)
        self._record(2)
        for buf in outputs:
            self._d2h(buf)
        self._record(3)
        enqueue_ms = (time.perf_counter() - t0) * 1e3
        self._wait(3)
        return DeviceTimes(enqueue_ms, self._elapsed(0, 1), self._elapsed(1, 2), self._elapsed(2, 3))

    def copy_device(self, dst: Buffer, src: Buffer) -> None:
        """Device-to-device copy on the stream: the stand-in 'compute' when checking the plumbing itself."""
        self._d2d(dst, src)
