from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from deploy.runners.pycuda_io import CudaIO, import_pycuda
from deploy.runners.tensorrt_runner import TensorRTRunner
from toolchain.errors import MissingDependencyError


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
