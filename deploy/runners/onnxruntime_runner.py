"""ONNX Runtime runner: CPU, or CUDA / TensorRT execution providers where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deploy.runners.base import Availability, Runner
from toolchain.errors import MissingDependencyError, UsageError

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, model_path: str | Path, provider: str = "cpu", threads: int = 0) -> None:
        super().__init__()
        if provider not in PROVIDERS:
            raise UsageError(f"onnxruntime provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
        self.model_path, self.provider, self.threads = Path(model_path), provider, threads
        self.device = "cpu" if provider == "cpu" else "cuda"
        self.session: Any = None

    @classmethod
    def availability(cls, provider: str = "cpu") -> Availability:
        try:
            import onnxruntime as ort
        except ImportError:
            return Availability(False, "onnxruntime is not installed (pip install cplitool, or the [gpu] extra)")
        if PROVIDERS[provider] not in ort.get_available_providers():
            return Availability(
                False,
                f"{PROVIDERS[provider]} is not available (installed: {', '.join(ort.get_available_providers())})",
            )
        return Availability(True)

    def activate(self) -> None:
        check = self.availability(self.provider)
        if not check.ok:
            raise MissingDependencyError(check.reason)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.model_path), opts, providers=[PROVIDERS[self.provider]])
        except Exception as e:
            raise UsageError(f"{self.model_path}: ONNX Runtime cannot load it: {str(e).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def deactivate(self) -> None:
        self.session = None
