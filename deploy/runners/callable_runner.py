"""Any Python function behind the runner interface, so the same harness can time it (a custom inference
path, a stand-in of known duration when measuring the harness itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cplitool.deploy.runners.base import Availability, Runner
from cplitool.deploy.runners.device_times import DeviceTimes


class CallableRunner(Runner):
    """`fn(x)` returns the output; with `times_device`, it returns (output, DeviceTimes) like a GPU runner."""

    backend = "callable"

    def __init__(self, fn: Callable[[np.ndarray], Any], times_device: bool = False) -> None:
        super().__init__()
        self.fn, self.times_device = fn, times_device

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.fn(x)
        return out[0] if self.times_device else out

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        return self.fn(x)
