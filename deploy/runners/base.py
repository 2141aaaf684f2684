"""The runner interface every backend implements, and the availability check that explains skips.

As in Polygraphy, the base class owns the lifecycle: activate() checks that the runner can run here, then
calls the backend's _activate(); deactivate() calls _deactivate(). The timing loop (deploy/bench/timing.py)
reads only what is declared here: times_device, infer_timed and input_dtype.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from cplitool.deploy.runners.device_times import DeviceTimes
from cplitool.toolchain.errors import MissingDependencyError

Self = TypeVar("Self", bound="Runner")  # typing.Self is 3.11+; the package supports 3.10


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, why (shown to the user as the skip reason)."""

    ok: bool
    reason: str = ""


class Runner(ABC):
    """activate() acquires the session/engine/device buffers; infer() maps a host batch to host logits;
    deactivate() releases everything. Use as a context manager."""

    backend: str = "abstract"
    device: str = "cpu"
    # True where infer_timed returns device-event times (set per instance when it depends on the device).
    times_device: bool = False

    def __init__(self) -> None:
        self.active = False

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Cheap check (imports, devices) without building anything; a backend may take the device or
        provider to check as an argument with a default."""

    def check(self) -> Availability:
        """availability() for this runner's own device or provider (what activate() requires)."""
        return self.availability()

    @property
    def input_dtype(self) -> type[np.generic]:
        """The dtype infer() takes; a reduced-precision ONNX file or engine may want float16."""
        return np.float32

    def activate(self) -> None:
        check = self.check()
        if not check.ok:
            raise MissingDependencyError(check.reason)
        self._activate()
        self.active = True

    def deactivate(self) -> None:
        try:
            self._deactivate()
        finally:
            self.active = False

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, DeviceTimes]:
        """infer() with the H2D, compute and D2H times from device events; only where times_device."""
        raise NotImplementedError(f"{type(self).__name__} does not time on the device")

    def details(self) -> dict[str, Any]:
        """What bench.json should record about how this runner ran (I/O library, providers in use, ...)."""
        return {}

    def __enter__(self: Self) -> Self:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()
