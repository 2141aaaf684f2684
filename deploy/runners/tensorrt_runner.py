"""TensorRT engine runner: the engine from cplitool.deploy.trt.engine.load_engine; buffers, stream and events from
the first CUDA I/O library that works here (pycuda, cuda-python or torch: cplitool.deploy.runners.cuda.base).

Uses the TensorRT 10 name-based I/O API: set_input_shape, set_tensor_address, execute_async_v3. With
several optimization profiles the first one whose batch range holds the input's batch is selected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cplitool.deploy.runners.base import Availability, Runner
from cplitool.deploy.runners.cuda.base import TRT_EXTRA, Buffer, DeviceIO
from cplitool.deploy.runners.cuda.choose import choose_io, io_availability
from cplitool.deploy.runners.device_times import DeviceTimes
from cplitool.toolchain.errors import CplitoolError, UsageError


class TensorRTRunner(Runner):
    backend = "tensorrt"
    device = "cuda"
    times_device = True

    def __init__(self, engine_path: str | Path, device_index: int = 0) -> None:
        super().__init__()
        self.engine_path, self.device_index = Path(engine_path), device_index
        self.io: DeviceIO | None = None
        self._shape: tuple[int, ...] | None = None

    @classmethod
    def availability(cls) -> Availability:
        try:
            import tensorrt
        except ImportError:
            return Availability(False, f"tensorrt is not installed: {TRT_EXTRA}")
        checks = io_availability()
        if any(c.ok for c in checks.values()):
            return Availability(True)
        reasons = "; ".join(f"{name}: {c.reason}" for name, c in checks.items())
        return Availability(False, f"tensorrt {tensorrt.__version__} is installed but no CUDA I/O works ({reasons})")

    @property
    def io_name(self) -> str:
        """Which library moved the data ('pycuda', 'cuda-python' or 'torch'), once active."""
        return self.io.name if self.io else ""

    @property
    def input_dtype(self) -> type[np.generic]:
        return self._input_dtype

    def _activate(self) -> None:
        import tensorrt as trt

        self.trt = trt
        self.io = choose_io(self.device_index)
        self.io.open()
        try:
            self._open_engine()
        except BaseException:
            self.deactivate()
            raise

    def _open_engine(self) -> None:
        """Deserialize the engine (with its sidecar checks), create the context, find the I/O tensors."""
        trt = self.trt
        from cplitool.deploy.trt.engine import load_engine

        self.engine, self.sidecar = load_engine(self.engine_path)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise CplitoolError(f"{self.engine_path}: TensorRT could not create an execution context (GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise UsageError(f"{self.engine_path}: expected one input tensor, found {self.inputs}")
        self._input_dtype = trt.nptype(self.engine.get_tensor_dtype(self.inputs[0]))

    def _select_profile(self, batch: int) -> None:
        name = self.inputs[0]
        for p in range(self.engine.num_optimization_profiles):
            low, _, high = self.engine.get_tensor_profile_shape(name, p)
            if low[0] <= batch <= high[0]:
                if not self.context.set_optimization_profile_async(p, self.io_ready.stream_handle):
                    raise CplitoolError(f"{self.engine_path}: TensorRT refused optimization profile {p}")
                return
        raise UsageError(f"{self.engine_path}: batch {batch} is outside every optimization profile of the engine")

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Pick the profile, set the input shape, and allocate and register buffers for every I/O tensor."""
        self._shape = None  # a failure below leaves nothing bound, so the next call binds afresh
        io = self.io_ready
        io.release_buffers()
        self._select_profile(shape[0])
        if not self.context.set_input_shape(self.inputs[0], shape):
            raise UsageError(f"{self.engine_path}: input shape {shape} is not accepted by the engine")
        self.buffers: dict[str, Buffer] = {}
        for name in self.inputs + self.outputs:
            dims = tuple(self.context.get_tensor_shape(name))
            buf = io.buffer(dims, self.trt.nptype(self.engine.get_tensor_dtype(name)))
            if not self.context.set_tensor_address(name, buf.address):
                raise CplitoolError(f"{self.engine_path}: TensorRT refused the address of tensor {name!r}")
            self.buffers[name] = buf
        self._shape = shape

    def _launch(self, stream_handle: int) -> None:
        if not self.context.execute_async_v3(stream_handle):
            raise CplitoolError(f"{self.engine_path}: TensorRT failed to enqueue the inference")

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        if tuple(x.shape) != self._shape:
            self._bind(tuple(x.shape))
        out = [self.buffers[n] for n in self.outputs]
        times = self.io_ready.run([(self.buffers[self.inputs[0]], x)], self._launch, out)
        return out[0].host.copy(), times

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.infer_timed(x)[0]

    @property
    def io_ready(self) -> DeviceIO:
        if self.io is None:
            raise CplitoolError(f"{self.engine_path}: the TensorRT runner is not active")
        return self.io

    def details(self) -> dict[str, str]:
        return {"io": self.io_name}

    def _deactivate(self) -> None:
        """Buffers first (the engine may still reference them), then context and engine, then the stream."""
        if self.io is not None:
            try:
                self.io.release_buffers()
            finally:
                self.context = self.engine = None
                self._shape = None
                self.io.close()
