"""Runners of known duration on a fake clock, so timing tests are exact and take no time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cplitool.deploy.runners.callable_runner import CallableRunner
from cplitool.deploy.runners.device_times import DeviceTimes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_runner(clock: FakeClock, ms: float, name: str = "", log: list[str] | None = None) -> CallableRunner:
    """Each inference advances the clock by `ms`; the order of calls is appended to `log`."""

    def step(x: np.ndarray) -> np.ndarray:
        clock.now += ms / 1e3
        if log is not None:
            log.append(name)
        return x

    return CallableRunner(step)


def fake_gpu_runner(clock: FakeClock, times: DeviceTimes) -> CallableRunner:
    """Reports fixed device times, like a GPU runner's infer_timed."""

    def step(x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        clock.now += (times.h2d_ms + times.compute_ms + times.d2h_ms) / 1e3
        return x, times

    return CallableRunner(step, times_device=True)


def write_engine(path: Path, max_batch: int = 8) -> Path:
    """An engine file the fake TensorRT (tests.deploy.gpu_fakes) loads, with its sidecar: FP16, input 1x8x8."""
    from cplitool.deploy.trt.sidecar import Sidecar

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"engine:input")
    profiles = [{"min": 1, "opt": 1, "max": max_batch}]
    sidecar = Sidecar(path.name, "x.onnx", "0" * 64, "fp16", "input", [1, 8, 8], profiles, "10.9.0", "NVIDIA H200",
                      "9.0", 1.0, 3, 256, "trt.cache", "now")  # fmt: skip
    sidecar.write(path)
    return path
