"""ONNX Runtime runner: CPU, or the CUDA / TensorRT execution providers where onnxruntime-gpu is installed.

On a GPU the session runs with IO binding on device buffers and on the stream of a CUDA I/O library
(cplitool.deploy.runners.cuda.base), so the H2D copy, the run and the D2H copy are event-timed apart and the row
reports GPU compute like the torch and TensorRT rows beside it. Where no CUDA I/O library works, inputs
and outputs still live on the device (OrtValues) but only host latency can be timed, and the variant
says so. ONNX Runtime falls back to the CPU with only a warning when a GPU provider fails to load, so
the providers actually in use are checked and a fallback is a skip with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability, Runner
from cplitool.deploy.runners.cuda.base import Buffer, DeviceIO
from cplitool.deploy.runners.cuda.choose import choose_io, io_availability
from cplitool.deploy.runners.device_times import DeviceTimes
from cplitool.toolchain.errors import MissingDependencyError, UsageError, first_line
from cplitool.toolchain.install import installed_versions

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
# Distributions that all install the same `onnxruntime` module: two at once overwrite each other's files.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)
GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu>=1.18'"
HOST_LATENCY = "host-latency"
ELEMENT_TYPES: dict[str, type[np.generic]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def installed_onnxruntimes() -> dict[str, str]:
    """Installed ONNX Runtime distributions and their versions (from package metadata, not the module)."""
    return installed_versions(ORT_DISTRIBUTIONS)


def ort_clash() -> str:
    """'' or the sentence naming the distributions installed together and the command that fixes it."""
    found = installed_onnxruntimes()
    if len(found) < 2:
        return ""
    names = " and ".join(f"{n} {v}" for n, v in found.items())
    return (
        f"{names} are installed together: they share the onnxruntime module and the last installed wins, "
        f"so the GPU providers may be missing; keep one: {GPU_INSTALL}"
    )


def gpu_variant(provider: str) -> str:
    """The bench variant of a provider: its name when GPU compute can be event-timed, else '<name>-host-latency'."""
    if provider == "cpu":
        return "cpu"
    timed = any(c.ok for c in io_availability().values())
    return provider if timed else f"{provider}-{HOST_LATENCY}"


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(
        self, model_path: str | Path, provider: str = "cpu", threads: int = 0, io: DeviceIO | None = None
    ) -> None:
        """`io`: the CUDA I/O library for a GPU provider (default: the first that works here). Given with the
        CPU provider, the same IO-binding path runs on host memory (how it is tested without a GPU)."""
        super().__init__()
        if provider not in PROVIDERS:
            raise UsageError(f"onnxruntime provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
        self.model_path, self.provider, self.threads = Path(model_path), provider, threads
        self.device = "cpu" if provider == "cpu" else "cuda"
        self.io, self.use_io = io, io is not None
        self.times_device = False
        self.session: Any = None
        self.binding: Any = None
        self._shape: tuple[int, ...] | None = None

    @classmethod
    def availability(cls, provider: str = "cpu") -> Availability:
        try:
            import onnxruntime as ort
        except ImportError:
            return Availability(False, f"onnxruntime is not installed ({ort_clash() or 'pip install cplitool'})")
        available = ort.get_available_providers()
        if PROVIDERS[provider] not in available:
            fix = ort_clash() or (f"for the GPU providers: {GPU_INSTALL}" if provider != "cpu" else "")
            return Availability(
                False,
                f"{PROVIDERS[provider]} is not available (installed: {', '.join(available)}){'; ' + fix if fix else ''}",
            )
        return Availability(True)

    @property
    def input_dtype(self) -> type[np.generic]:
        return self._input_dtype

    def check(self) -> Availability:
        return self.availability(self.provider)

    def _activate(self) -> None:
        import onnxruntime as ort

        if self.provider != "cpu" and self.io is None:
            try:
                self.io = choose_io()
            except MissingDependencyError:
                self.io = None  # device-resident OrtValues, host latency only (the variant says so)
            self.use_io = True
        if self.io is not None:
            self.io.open()
            self.times_device = True
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.model_path), opts, providers=[self._provider_entry()])
        except Exception as e:
            self.deactivate()
            raise UsageError(f"{self.model_path}: ONNX Runtime cannot load it: {first_line(e)}") from None
        in_use = self.session.get_providers()
        if PROVIDERS[self.provider] not in in_use:
            self.deactivate()
            raise MissingDependencyError(
                f"{self.model_path}: ONNX Runtime fell back to {', '.join(in_use)}: {PROVIDERS[self.provider]} did "
                f"not load (see ONNX Runtime's warning: CUDA/cuDNN libraries?); {ort_clash() or GPU_INSTALL}"
            )
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self._input_dtype = ELEMENT_TYPES.get(inp.type, np.float32)
        self._output_dtype = ELEMENT_TYPES.get(out.type, np.float32)
        if self.use_io:
            self.binding = self.session.io_binding()

    def _provider_entry(self) -> Any:
        name = PROVIDERS[self.provider]
        if self.provider == "cpu":
            return name
        options = {"device_id": str(self.io.device_index if self.io else 0)}
        if self.io is not None:  # ONNX Runtime works on our stream, so our events bracket its kernels
            options["user_compute_stream"] = str(self.io.stream_handle)
        return name, options

    @property
    def device_type(self) -> str:
        return "cpu" if self.provider == "cpu" else "cuda"

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Bind the input (a device buffer, or an OrtValue) and an output buffer of the size one run reports."""
        self._shape = None
        b, kind = self.binding, self.device_type
        index = self.io.device_index if self.io else 0
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        if self.io is not None:
            self.io.release_buffers()
            self.in_buf = self.io.buffer(shape, self._input_dtype)
            b.bind_input(self.input_name, kind, index, self._input_dtype, list(shape), self.in_buf.address)
        else:
            import onnxruntime as ort

            self.in_value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), self._input_dtype, kind, index)
            b.bind_ortvalue_input(self.input_name, self.in_value)
        b.bind_output(self.output_name, kind, index)  # let ONNX Runtime size it once
        self.session.run_with_iobinding(b)
        out_shape = tuple(b.get_outputs()[0].shape())
        if self.io is not None:
            b.clear_binding_outputs()
            self.out_buf: Buffer = self.io.buffer(out_shape, self._output_dtype)
            b.bind_output(self.output_name, kind, index, self._output_dtype, list(out_shape), self.out_buf.address)
        self._shape = shape

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        """One bound run with event times of H2D, the run and D2H (the torch and TensorRT metric)."""
        if tuple(x.shape) != self._shape:
            self._bind(tuple(x.shape))
        assert self.io is not None
        times = self.io.run(
            [(self.in_buf, x)], lambda _stream: self.session.run_with_iobinding(self.binding), [self.out_buf]
        )
        return self.out_buf.host.copy(), times

    def infer(self, x: np.ndarray) -> np.ndarray:
        if not self.use_io:
            return self.session.run(None, {self.input_name: x})[0]
        if self.io is not None:
            return self.infer_timed(x)[0]
        if tuple(x.shape) != self._shape:
            self._bind(tuple(x.shape))
        self.in_value.update_inplace(np.ascontiguousarray(x, dtype=self._input_dtype))
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]

    def details(self) -> dict[str, Any]:
        in_use = list(self.session.get_providers()) if self.session is not None else []
        metric = "gpu compute (events on ONNX Runtime's stream)" if self.times_device else "host latency"
        return {"providers": in_use, "io": self.io.name if self.io else "", "metric": metric}

    def _deactivate(self) -> None:
        """The binding and buffers before the session; the stream last."""
        self.binding = self.in_value = None
        self._shape = None
        try:
            if self.io is not None:
                self.io.close()
        finally:
            self.session = None
