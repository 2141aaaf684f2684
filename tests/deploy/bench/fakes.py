"""Runners of known duration on a fake clock, so timing tests are exact and take no time."""

from __future__ import annotations

import numpy as np

from deploy.runners.callable_runner import CallableRunner
from deploy.runners.device_times import DeviceTimes


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
