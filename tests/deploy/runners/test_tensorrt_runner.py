"""The TensorRT engine runner on fakes of tensorrt and of each CUDA I/O library (no GPU needed)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import cplitool.deploy.trt.engine as engine_module
from cplitool.deploy.runners.cuda.pycuda_io import import_pycuda
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.toolchain.errors import MissingDependencyError, UsageError
from cplitool.toolchain.install import install_hint
from tests.deploy.gpu_fakes import FakeGPU, fake_tensorrt, install_cudart, install_pycuda


def test_tensorrt_missing_is_reported_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    check = TensorRTRunner.availability()
    assert not check.ok
    assert "tensorrt is not installed" in check.reason and install_hint("trt") in check.reason
    with pytest.raises(MissingDependencyError, match="tensorrt is not installed"):
        TensorRTRunner("model.engine").activate()


def test_pycuda_missing_names_its_own_extra_and_the_wheel_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    pattern = r"pycuda is not installed.*" + re.escape(install_hint("pycuda")) + r".*cuda-python"
    with pytest.raises(MissingDependencyError, match=pattern):
        import_pycuda()


@pytest.mark.parametrize("io_name", ["pycuda", "cuda-python"])
def test_engine_runner_binds_per_shape_selects_profiles_and_round_trips(
    io_name: str, gpu: FakeGPU, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pycuda, and without it (cuda-python): buffers, profile choice, copies, event times, all freed."""
    if io_name == "cuda-python":
        install_pycuda(monkeypatch, None)
    trt = fake_tensorrt(gpu)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    engine = trt.ICudaEngine()
    monkeypatch.setattr(engine_module, "load_engine", lambda path: (engine, None))
    assert TensorRTRunner.availability().ok
    dense, pruned = TensorRTRunner("dense.engine"), TensorRTRunner("pruned.engine")
    with dense as runner, pruned:
        assert runner.details() == {"io": io_name}
        for batch in (4, 64, 4):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 4, 4), dtype=np.float32)
            out, times = runner.infer_timed(x)
            assert np.array_equal(out, 2 * x.reshape(batch, -1)[:, :10])
            assert times.h2d_ms == times.compute_ms == times.d2h_ms > 0 and times.enqueue_ms >= 0
        with pytest.raises(UsageError, match="outside every optimization profile"):
            runner.infer(np.zeros((300, 3, 4, 4), dtype=np.float32))
        assert runner.infer(x).shape == (4, 10)  # a refused batch leaves the runner usable
        assert pruned.infer(x).shape == (4, 10)
    assert engine.context.profiles == [0, 1, 0, 0, 0]  # re-bound whenever the batch changes
    assert gpu.clean(), gpu.problems  # every buffer, stream and event freed; no context left pushed
    assert gpu.max_depth <= 1


def test_no_cuda_io_library_is_a_clear_skip(gpu: FakeGPU, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(gpu))
    install_pycuda(monkeypatch, None)
    install_cudart(monkeypatch, None)
    check = TensorRTRunner.availability()
    assert not check.ok and "no CUDA I/O works" in check.reason and "cuda-python is not installed" in check.reason
