"""PyTorch's CUDA caching allocator, pinned host tensors, a side stream and timing events behind DeviceIO:
the fallback that needs nothing beyond the torch wheel every cplitool install already has."""

from __future__ import annotations

from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.cuda.base import Buffer, DeviceIO


class TorchIO(DeviceIO):
    name = "torch"

    @classmethod
    def availability(cls, device_index: int = 0) -> Availability:
        try:
            import torch
        except ImportError:
            return Availability(False, "torch is not installed")
        if not torch.cuda.is_available():
            return Availability(False, f"torch {torch.__version__} sees no CUDA device")
        count = torch.cuda.device_count()
        return Availability(count > device_index, "" if count > device_index else f"torch sees {count} CUDA devices")

    def _open(self) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", self.device_index)
        self.stream: Any = torch.cuda.Stream(self.device)
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def _close(self) -> None:
        self.stream.synchronize()
        self.stream, self.events = None, []
        self.torch.cuda.empty_cache()  # the freed buffers go back to the driver, not only to torch's cache

    def _alloc(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        torch = self.torch
        tdtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        host = torch.empty(shape, dtype=tdtype, pin_memory=True)
        device = torch.empty(shape, dtype=tdtype, device=self.device)
        device.record_stream(self.stream)  # allocated on the default stream, used on ours
        return Buffer(host.numpy(), int(device.data_ptr()), (host, device))

    def _free(self, buf: Buffer) -> None:
        buf.handle = None  # the last references: the caching allocator takes both back

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def _record(self, event: int) -> None:
        self.events[event].record(self.stream)

    def _h2d(self, buf: Buffer) -> None:
        host, device = buf.handle
        with self.torch.cuda.stream(self.stream):
            device.copy_(host, non_blocking=True)

    def _d2h(self, buf: Buffer) -> None:
        host, device = buf.handle
        with self.torch.cuda.stream(self.stream):
            host.copy_(device, non_blocking=True)

    def _d2d(self, dst: Buffer, src: Buffer) -> None:
        with self.torch.cuda.stream(self.stream):
            dst.handle[1].copy_(src.handle[1], non_blocking=True)

    def _wait(self, event: int) -> None:
        self.events[event].synchronize()

    def _elapsed(self, start: int, end: int) -> float:
        return float(self.events[start].elapsed_time(self.events[end]))
