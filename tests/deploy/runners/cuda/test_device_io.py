"""CUDA I/O libraries behind one interface, on fakes: which one is chosen, that data round-trips, that
everything is freed, and that pycuda's one context per process is pushed once and popped once."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from cplitool.deploy.runners.cuda.base import DeviceIO
from cplitool.deploy.runners.cuda.choose import choose_io
from cplitool.deploy.runners.cuda.cudart_io import CudartIO
from cplitool.deploy.runners.cuda.pycuda_io import PycudaIO
from cplitool.toolchain.errors import MissingDependencyError
from cplitool.toolchain.install import install_hint
from tests.deploy.gpu_fakes import FakeGPU, fake_cudart, install_cudart, install_pycuda


def round_trip(io: DeviceIO) -> None:
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    src, dst = io.buffer(x.shape, np.float32), io.buffer(x.shape, np.float32)
    times = io.run([(src, x)], lambda handle: io.copy_device(dst, src), [dst])
    assert np.array_equal(dst.host, x)
    assert times.h2d_ms == times.compute_ms == times.d2h_ms > 0 and times.enqueue_ms >= 0


@pytest.mark.parametrize("cls", [PycudaIO, CudartIO])
def test_round_trip_and_everything_freed(cls: type[DeviceIO], gpu: FakeGPU) -> None:
    io = cls()
    io.open()
    round_trip(io)
    io.close()
    assert gpu.clean(), gpu.problems
    assert gpu.next_address > 4096  # it really allocated on the fake device


def test_preference_pycuda_then_cuda_python_then_torch(gpu: FakeGPU, monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_io().name == "pycuda"
    install_pycuda(monkeypatch, None)
    assert choose_io().name == "cuda-python"
    install_cudart(monkeypatch, gpu, devices=-1)  # cuda-python 13 on an older driver
    with pytest.raises(MissingDependencyError) as e:
        choose_io()
    text = str(e.value)
    assert "pycuda: pycuda is not installed" in text and "insufficient for CUDA runtime" in text
    assert "torch: torch" in text and "sees no CUDA device" in text and install_hint("trt") in text


def test_one_pycuda_context_for_dense_and_pruned(gpu: FakeGPU) -> None:
    """Catches a push per runner (depth 2), a detach that leaves a stray push, and frees after the context
    is gone (pycuda skips them): the runners' lifetimes overlap in any order."""
    dense, pruned = PycudaIO(), PycudaIO()
    dense.open()
    pruned.open()
    round_trip(dense)
    dense.close()  # the first opened closes first: the context must stay current for the other
    round_trip(pruned)
    pruned.close()
    assert gpu.max_depth == 1 and gpu.retains == 1  # pushed once, retained once for the process
    assert gpu.clean(), gpu.problems
    assert gpu.host_frees == 4  # page-locked host memory freed explicitly, not left to the garbage collector
    again = PycudaIO()  # the retained context is reused, not retained a second time
    again.open()
    again.close()
    assert gpu.retains == 1 and gpu.clean()


def test_the_fake_catches_the_old_context_handling(gpu: FakeGPU) -> None:
    """The fake is strict where pycuda is: a per-runner push then pop-and-detach leaves a stray push, and
    a free after detach is skipped (so the tests above could fail)."""
    cuda = sys.modules["pycuda.driver"]
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    alloc = cuda.mem_alloc(16)
    ctx.pop()
    ctx.detach()
    alloc.free()
    assert gpu.stack and "skipped" in gpu.problems[0]
    with pytest.raises(AttributeError):
        cuda.Device(0).make_current()  # a name pycuda does not have


@pytest.mark.skipif(importlib.util.find_spec("cuda.bindings") is None, reason="cuda-python is not installed")
def test_fake_cuda_python_names_exist_in_the_real_bindings() -> None:
    """Every function and enum the fake offers (so every one the code can call on it) is in cuda-python."""
    from cuda.bindings import runtime as real

    fake = fake_cudart(FakeGPU())
    names = [n for n in vars(fake) if n.startswith("cuda")]
    assert len(names) > 15
    assert [n for n in names if not hasattr(real, n)] == []
    for enum_name in ("cudaError_t", "cudaMemcpyKind"):
        members = [m.name for m in getattr(fake, enum_name)]
        assert [m for m in members if not hasattr(getattr(real, enum_name), m)] == []


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["torch", "cuda-python", "pycuda"])
def test_real_round_trip_on_the_gpu(name: str) -> None:
    """On a GPU host: each CUDA I/O library that works there moves data to the device and back unchanged,
    with positive event times, and frees what it allocated."""
    from cplitool.deploy.runners.cuda.choose import io_classes

    cls = {c.name: c for c in io_classes()}[name]
    check = cls.availability()
    if not check.ok:
        pytest.skip(check.reason)
    io = cls()
    io.open()
    try:
        x = np.random.default_rng(0).standard_normal((64, 3, 32, 32), dtype=np.float32)
        src, dst = io.buffer(x.shape, np.float32), io.buffer(x.shape, np.float32)
        times = io.run([(src, x)], lambda handle: io.copy_device(dst, src), [dst])
        assert np.array_equal(dst.host, x)
        assert times.h2d_ms > 0 and times.compute_ms > 0 and times.d2h_ms > 0
    finally:
        io.close()
    assert io.buffers == []
