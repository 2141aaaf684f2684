"""cuda-python's runtime bindings behind DeviceIO: wheels only, no CUDA toolkit, as NVIDIA's TensorRT 10/11
samples do. The runtime API works in the device's primary context, so nothing is pushed or popped.

Every call returns (error, *values); `call` turns an error into one clear message instead of going on
with a null pointer.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.cuda.base import TRT_EXTRA, Buffer, DeviceIO
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError


def import_cudart() -> Any:
    """cuda.bindings.runtime (cuda-python >= 12.6), else the older cuda.cudart, or a clear error."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError as e:
            raise MissingDependencyError(f"cuda-python is not installed ({e}): {TRT_EXTRA}") from None
    return runtime


def call(rt: Any, what: str, result: Any) -> Any:
    """The value(s) of a cuda-python call, or a CplitoolError with the CUDA error's description."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        text = rt.cudaGetErrorString(err)[1]
        raise CplitoolError(f"CUDA runtime error in {what}: {text.decode() if isinstance(text, bytes) else text}")
    return values[0] if len(values) == 1 else values or None


class CudartIO(DeviceIO):
    name = "cuda-python"

    @classmethod
    def availability(cls, device_index: int = 0) -> Availability:
        try:
            rt = import_cudart()
        except MissingDependencyError as e:
            return Availability(False, str(e))
        try:
            count = call(rt, "cudaGetDeviceCount", rt.cudaGetDeviceCount())
        except CplitoolError as e:
            return Availability(False, str(e))
        return Availability(count > device_index, "" if count > device_index else "no CUDA device visible")

    def _open(self) -> None:
        self.rt = rt = import_cudart()
        call(rt, "cudaSetDevice", rt.cudaSetDevice(self.device_index))
        self.stream = call(rt, "cudaStreamCreate", rt.cudaStreamCreate())
        self.events: list[Any] = []
        for _ in range(4):
            self.events.append(call(rt, "cudaEventCreate", rt.cudaEventCreate()))

    def _close(self) -> None:
        rt = self.rt
        call(rt, "cudaStreamSynchronize", rt.cudaStreamSynchronize(self.stream))
        while self.events:
            call(rt, "cudaEventDestroy", rt.cudaEventDestroy(self.events.pop()))
        call(rt, "cudaStreamDestroy", rt.cudaStreamDestroy(self.stream))

    def _alloc(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        rt = self.rt
        nbytes = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
        host_ptr = call(rt, "cudaMallocHost", rt.cudaMallocHost(nbytes))
        try:
            device_ptr = call(rt, "cudaMalloc", rt.cudaMalloc(nbytes))
        except CplitoolError:
            call(rt, "cudaFreeHost", rt.cudaFreeHost(host_ptr))
            raise
        raw = (ctypes.c_byte * nbytes).from_address(int(host_ptr))
        host = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)
        return Buffer(host, int(device_ptr), (host_ptr, device_ptr))

    def _free(self, buf: Buffer) -> None:
        host_ptr, device_ptr = buf.handle
        call(self.rt, "cudaFree", self.rt.cudaFree(device_ptr))
        call(self.rt, "cudaFreeHost", self.rt.cudaFreeHost(host_ptr))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def synchronize(self) -> None:
        call(self.rt, "cudaStreamSynchronize", self.rt.cudaStreamSynchronize(self.stream))

    def _copy(self, dst: int, src: int, nbytes: int, kind: str) -> None:
        rt = self.rt
        result = rt.cudaMemcpyAsync(dst, src, nbytes, getattr(rt.cudaMemcpyKind, kind), self.stream)
        call(rt, "cudaMemcpyAsync", result)

    def _record(self, event: int) -> None:
        call(self.rt, "cudaEventRecord", self.rt.cudaEventRecord(self.events[event], self.stream))

    def _h2d(self, buf: Buffer) -> None:
        self._copy(buf.address, buf.host.ctypes.data, buf.host.nbytes, "cudaMemcpyHostToDevice")

    def _d2h(self, buf: Buffer) -> None:
        self._copy(buf.host.ctypes.data, buf.address, buf.host.nbytes, "cudaMemcpyDeviceToHost")

    def _d2d(self, dst: Buffer, src: Buffer) -> None:
        self._copy(dst.address, src.address, src.host.nbytes, "cudaMemcpyDeviceToDevice")

    def _wait(self, event: int) -> None:
        call(self.rt, "cudaEventSynchronize", self.rt.cudaEventSynchronize(self.events[event]))

    def _elapsed(self, start: int, end: int) -> float:
        return float(
            call(self.rt, "cudaEventElapsedTime", self.rt.cudaEventElapsedTime(self.events[start], self.events[end]))
        )
