"""The runner contract the base class owns: activate() checks availability before the backend's _activate(),
deactivate() always marks the runner inactive, and the timing capabilities have declared defaults."""

from __future__ import annotations

import numpy as np
import pytest

from cplitool.deploy.runners.base import Availability, Runner
from cplitool.toolchain.errors import MissingDependencyError


class Probe(Runner):
    backend = "probe"

    def __init__(self, ok: bool = True, fail_deactivate: bool = False) -> None:
        super().__init__()
        self.ok, self.fail_deactivate, self.calls = ok, fail_deactivate, []

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def check(self) -> Availability:
        return Availability(self.ok, "" if self.ok else "probe library missing")

    def _activate(self) -> None:
        self.calls.append("activate")

    def _deactivate(self) -> None:
        self.calls.append("deactivate")
        if self.fail_deactivate:
            raise RuntimeError("release failed")

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x


def test_an_unavailable_runner_never_reaches_its_backend() -> None:
    runner = Probe(ok=False)
    with pytest.raises(MissingDependencyError, match="probe library missing"), runner:
        pass
    assert runner.calls == [] and not runner.active


def test_enter_returns_the_runner_itself_and_exit_releases_it() -> None:
    with Probe() as runner:
        assert isinstance(runner, Probe) and runner.active  # typed as Probe, not Runner: no assert needed
        assert runner.calls == ["activate"]
    assert runner.calls == ["activate", "deactivate"] and not runner.active


def test_a_failed_release_still_marks_the_runner_inactive() -> None:
    runner = Probe(fail_deactivate=True)
    with pytest.raises(RuntimeError, match="release failed"), runner:
        pass
    assert not runner.active


def test_declared_timing_capabilities_default_to_host_timing() -> None:
    runner = Probe()
    assert runner.times_device is False and runner.input_dtype is np.float32
    with pytest.raises(NotImplementedError, match="Probe does not time on the device"):
        runner.infer_timed(np.zeros(1))
