from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from deploy.runners.pycuda_io import CudaIO, import_pycuda
from deploy.runners.tensorrt_runner import TensorRTRunner
from toolchain.errors import MissingDependencyError, UsageError


def test_tensorrt_missing_is_reported_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    check = TensorRTRunner.availability()
    assert not check.ok
    assert "tensorrt is not installed" in check.reason and "cplitool[trt]" in check.reason
    with pytest.raises(MissingDependencyError, match="tensorrt is not installed"):
        TensorRTRunner("model.engine").activate()


def test_pycuda_missing_is_reported_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(MissingDependencyError, match=r"pycuda is not installed.*cplitool\[trt\]"):
        import_pycuda()


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed")
def test_pycuda_buffers_stream_and_events_round_trip() -> None:
    io = CudaIO()
    io.open()
    try:
        x = np.arange(4 * 3 * 32 * 32, dtype=np.float32).reshape(4, 3, 32, 32)
        src, dst = io.buffer(x.shape, np.float32), io.buffer(x.shape, np.float32)
        times = io.run([(src, x)], lambda handle: io.copy_device(dst, src), [dst])
        assert np.array_equal(dst.host, x)
        assert times.h2d_ms > 0 and times.compute_ms > 0 and times.d2h_ms > 0
    finally:
        io.close()


class FakeDriver:
    """Just enough of pycuda.driver: host arrays, 'device' allocations that hold copies, events of 0.5 ms."""

    Error = RuntimeError
    memory: dict[int, np.ndarray] = {}  # noqa: RUF012 - one fake device per test

    class Alloc:
        def __init__(self, nbytes: int) -> None:
            self.ptr = 4096 + len(FakeDriver.memory)
            FakeDriver.memory[self.ptr] = np.zeros(0)

        def __int__(self) -> int:
            return self.ptr

        def free(self) -> None:
            FakeDriver.memory.pop(self.ptr, None)

    class Context:
        def push(self) -> None: ...
        def pop(self) -> None: ...
        def detach(self) -> None: ...

    class Device:
        def __init__(self, index: int) -> None: ...

        @staticmethod
        def count() -> int:
            return 1

        def retain_primary_context(self) -> FakeDriver.Context:
            return FakeDriver.Context()

    class Stream:
        handle = 7

        def synchronize(self) -> None: ...

    class Event:
        def record(self, stream: object) -> None: ...
        def synchronize(self) -> None: ...

        def time_till(self, other: object) -> float:
            return 0.5

    @staticmethod
    def init() -> None: ...

    pagelocked_empty = staticmethod(np.empty)

    @staticmethod
    def mem_alloc(nbytes: int) -> FakeDriver.Alloc:
        return FakeDriver.Alloc(nbytes)

    @staticmethod
    def memcpy_htod_async(dev: FakeDriver.Alloc, host: np.ndarray, stream: object) -> None:
        FakeDriver.memory[int(dev)] = host.copy()

    @staticmethod
    def memcpy_dtoh_async(host: np.ndarray, dev: FakeDriver.Alloc, stream: object) -> None:
        host[...] = FakeDriver.memory[int(dev)]


class FakeContext:
    """Execution context whose 'network' doubles the first ten input values of each sample."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] = ()
        self.addresses: dict[str, int] = {}
        self.profiles: list[int] = []

    def set_optimization_profile_async(self, index: int, handle: int) -> bool:
        self.profiles.append(index)
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape if name == "input" else (self.shape[0], 10)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def execute_async_v3(self, handle: int) -> bool:
        x = FakeDriver.memory[self.addresses["input"]]
        FakeDriver.memory[self.addresses["logits"]] = 2 * x.reshape(x.shape[0], -1)[:, :10]
        return True


class FakeEngine:
    num_io_tensors = 2
    num_optimization_profiles = 2

    def __init__(self) -> None:
        self.context = FakeContext()

    def get_tensor_name(self, i: int) -> str:
        return ("input", "logits")[i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == "input" else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "float"

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        low, opt, high = ((1, 1, 8), (9, 64, 256))[profile]
        return [(low, 3, 4, 4), (opt, 3, 4, 4), (high, 3, 4, 4)]

    def create_execution_context(self) -> FakeContext:
        return self.context


def test_engine_runner_binds_per_shape_selects_profiles_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TensorRT path on fakes of tensorrt and pycuda: buffers, profile choice, copies and event times."""
    import types

    import deploy.trt.engine as engine_module

    fake_trt = types.SimpleNamespace(
        __version__="10.fake", TensorIOMode=types.SimpleNamespace(INPUT="INPUT"), nptype=lambda dtype: np.float32
    )
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = FakeDriver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", FakeDriver)
    engine = FakeEngine()
    monkeypatch.setattr(engine_module, "load_engine", lambda path: (engine, None))
    assert TensorRTRunner.availability().ok
    with TensorRTRunner("model.engine") as runner:
        for batch in (4, 64, 4):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 4, 4), dtype=np.float32)
            out, times = runner.infer_timed(x)
            assert np.array_equal(out, 2 * x.reshape(batch, -1)[:, :10])
            assert (times.h2d_ms, times.compute_ms, times.d2h_ms) == (0.5, 0.5, 0.5) and times.enqueue_ms >= 0
        with pytest.raises(UsageError, match="outside every optimization profile"):
            runner.infer(np.zeros((300, 3, 4, 4), dtype=np.float32))
        assert runner.infer(x).shape == (4, 10)  # a refused batch leaves the runner usable
    assert engine.context.profiles == [0, 1, 0, 0]  # re-bound whenever the batch changes
    assert FakeDriver.memory == {}  # every device buffer freed on deactivate
