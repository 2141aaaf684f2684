"""PyTorch runner: CPU eager, or CUDA eager in channels_last with FP32 or FP16 compute and optional CUDA graphs.

On CUDA the host tensors are pinned and one stream carries H2D copy, compute and D2H copy between four
timing events, so GPU compute is timed apart from transfers (as trtexec does). Inputs and outputs stay
FP32; the cast to FP16 and to channels_last is part of the timed compute, like an engine with FP32 I/O.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability, Runner
from cplitool.deploy.runners.device_times import DeviceTimes
from cplitool.toolchain.errors import UsageError

PRECISIONS = ("fp32", "fp16")


def precision_label(device: str, precision: str) -> str:
    """What the compute really is: 'tf32' for fp32 on a GPU of compute capability 8.0 or newer where torch
    lets convolutions or matmuls use TF32 (cuDNN convolutions do by default), else `precision`."""
    if precision != "fp32" or not device.startswith("cuda"):
        return precision
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability(device)[0] < 8:
        return precision
    with warnings.catch_warnings():  # newer torch steers towards fp32_precision; the flags still tell
        warnings.simplefilter("ignore")
        tf32 = bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    return "tf32" if tf32 else precision


class TorchRunner(Runner):
    backend = "torch"

    def __init__(
        self,
        model: Any,
        device: str = "cpu",
        precision: str = "fp32",
        cuda_graphs: bool = False,
        threads: int = 0,
        channels_last: bool = True,
    ) -> None:
        """`model`: an nn.Module or the path of a cplitool artifact (loaded on activate)."""
        super().__init__()
        if precision not in PRECISIONS:
            raise UsageError(f"torch precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        on_cuda = device.startswith("cuda")
        if not on_cuda and (precision != "fp32" or cuda_graphs):
            raise UsageError("torch on the CPU runs fp32 eager only: fp16 and CUDA graphs need a CUDA device")
        self.source, self.device, self.precision = model, device, precision
        self.cuda_graphs, self.threads, self.channels_last = cuda_graphs, threads, channels_last and on_cuda
        self.times_device = on_cuda
        self.model: Any = None
        self._shape: tuple[int, ...] | None = None

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        try:
            import torch
        except ImportError:
            return Availability(False, "torch is not installed")
        if device.startswith("cuda") and not torch.cuda.is_available():
            build = f"CUDA build {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return Availability(False, f"torch sees no CUDA device (torch {torch.__version__}, {build})")
        return Availability(True)

    def check(self) -> Availability:
        return self.availability(self.device)

    def _activate(self) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        if isinstance(self.source, str | Path):
            from cplitool.toolchain.artifacts import load_artifact

            model, _ = load_artifact(self.source)
        else:
            model = copy.deepcopy(self.source)  # casts and moves below must not touch the caller's module
        model = model.eval().to(self.device)
        if self.precision == "fp16":
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if self.device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True  # fastest convolution algorithms for the fixed shapes, as engines do
            self.stream = torch.cuda.Stream(self.device)
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def _compute(self, x: Any) -> Any:
        """The timed device work: cast/layout of the input, the network, the cast of logits back to FP32."""
        import torch

        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        fmt = torch.channels_last if self.channels_last and x.dim() == 4 else torch.contiguous_format
        return self.model(x.to(dtype=dtype, memory_format=fmt)).float()

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Pinned host and device buffers for this input shape; capture the CUDA graph when asked."""
        import torch

        self.host_in = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self.dev_in = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.graph: Any = None
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # dev_in was zeroed on the default stream
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(3):  # cuDNN autotuning and allocator warm-up happen outside the capture
                out = self._compute(self.dev_in)
            self.stream.synchronize()
            if self.cuda_graphs:
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph, stream=self.stream):
                    out = self._compute(self.dev_in)
        self.dev_out = out
        self.host_out = torch.empty(tuple(out.shape), dtype=torch.float32, pin_memory=True)
        self._shape = shape

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        """One inference with CUDA-event times of H2D, compute and D2H, and the host enqueue time."""
        import torch

        if tuple(x.shape) != self._shape:
            self._bind(tuple(x.shape))
        self.host_in.numpy()[...] = x
        e0, e1, e2, e3 = self.events
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            e0.record(self.stream)
            self.dev_in.copy_(self.host_in, non_blocking=True)
            e1.record(self.stream)
            if self.graph is not None:
                self.graph.replay()
            else:
                self.dev_out = self._compute(self.dev_in)
            e2.record(self.stream)
            self.host_out.copy_(self.dev_out, non_blocking=True)
            e3.record(self.stream)
        enqueue_ms = (time.perf_counter() - t0) * 1e3
        e3.synchronize()
        times = DeviceTimes(enqueue_ms, e0.elapsed_time(e1), e1.elapsed_time(e2), e2.elapsed_time(e3))
        return self.host_out.numpy().copy(), times

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.times_device:
            return self.infer_timed(x)[0]
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()

    def _deactivate(self) -> None:
        self.model = self.graph = None
        self._shape = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
