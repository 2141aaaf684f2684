"""Runners with known durations on a fake clock, so timing tests are exact and take no time."""

from __future__ import annotations

import numpy as np

from deploy.runners.base import Availability, Runner
from deploy.runners.device_times import DeviceTimes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner(Runner):
    """Each inference advances the clock by `ms`; records the order of calls in `log`."""

    def __init__(self, clock: FakeClock, ms: float, name: str = "", log: list[str] | None = None) -> None:
        super().__init__()
        self.clock, self.ms, self.name, self.log = clock, ms, name, log

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.clock.now += self.ms / 1e3
        if self.log is not None:
            self.log.append(self.name)
        return x


class FakeGpuRunner(FakeRunner):
    """Reports fixed device times, like a GPU runner's infer_timed."""

    times_device = True

    def __init__(self, clock: FakeClock, times: DeviceTimes) -> None:
        super().__init__(clock, times.h2d_ms + times.compute_ms + times.d2h_ms)
        self.times = times

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        return self.infer(x), self.times
