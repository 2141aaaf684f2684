"""The runner interface every backend implements, and the availability check that explains skips."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np


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

    def __init__(self) -> None:
        self.active = False

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Cheap check (imports, devices) without building anything."""

    @abstractmethod
    def activate(self) -> None: ...

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def deactivate(self) -> None: ...

    def details(self) -> dict[str, Any]:
        """What bench.json should record about how this runner ran (I/O library, providers in use, ...)."""
        return {}

    def __enter__(self) -> Runner:
        self.activate()
        self.active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()
        self.active = False
