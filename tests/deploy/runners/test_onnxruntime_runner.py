"""ONNX Runtime runner: IO binding on device buffers (run here on host memory with the CPU provider),
provider fallback detected, and the onnxruntime / onnxruntime-gpu clash named."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cplitool.deploy.export.onnx_export import export_onnx
from cplitool.deploy.runners.base import Availability
from cplitool.deploy.runners.cuda.base import Buffer, DeviceIO
from cplitool.deploy.runners.onnxruntime_runner import OnnxRuntimeRunner, gpu_variant, ort_clash
from cplitool.toolchain.errors import MissingDependencyError
from cplitool.toolchain.models import create_model
from tests.deploy.gpu_fakes import install_cudart, install_pycuda


class HostIO(DeviceIO):
    """DeviceIO whose 'device' memory is ordinary host memory, so ONNX Runtime's CPU provider can read and
    write the bound addresses for real; events tick a fixed 1 ms apart."""

    name = "host"

    @classmethod
    def availability(cls, device_index: int = 0) -> Availability:
        return Availability(True)

    def _open(self) -> None:
        self.opened = getattr(self, "opened", 0) + 1

    def _close(self) -> None:
        self.closed = True

    def _alloc(self, shape: tuple[int, ...], dtype: Any) -> Buffer:
        device = np.zeros(shape, dtype)
        return Buffer(np.zeros(shape, dtype), device.ctypes.data, device)

    def _free(self, buf: Buffer) -> None:
        buf.handle = None

    @property
    def stream_handle(self) -> int:
        return 99

    def synchronize(self) -> None: ...

    def _record(self, event: int) -> None: ...

    def _h2d(self, buf: Buffer) -> None:
        buf.handle[...] = buf.host

    def _d2h(self, buf: Buffer) -> None:
        buf.host[...] = buf.handle

    def _d2d(self, dst: Buffer, src: Buffer) -> None:
        dst.handle[...] = src.handle

    def _wait(self, event: int) -> None: ...

    def _elapsed(self, start: int, end: int) -> float:
        return 1.0


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ort") / "m.fp32.onnx"
    export_onnx(create_model("quick_vgg", 10), (1, 8, 8), path)
    return path


def test_io_binding_matches_a_plain_run_and_rebinds_per_batch(model: Path) -> None:
    """Catches a wrong pointer, shape or dtype in bind_input/bind_output, and a stale binding after the batch
    changes: the bound outputs must equal session.run's."""
    io = HostIO()
    with OnnxRuntimeRunner(model, "cpu", threads=1) as plain, OnnxRuntimeRunner(model, "cpu", 1, io=io) as bound:
        assert bound.times_device and not plain.times_device
        for batch in (3, 8, 3):
            x = np.random.default_rng(batch).standard_normal((batch, 1, 8, 8), dtype=np.float32)
            out, times = bound.infer_timed(x)
            np.testing.assert_allclose(out, plain.infer(x), rtol=1e-6, atol=1e-6)
            assert out.shape == (batch, 10) and times.compute_ms == 1.0
        assert bound.details()["io"] == "host" and bound.details()["providers"] == ["CPUExecutionProvider"]
    assert io.closed and io.buffers == []


def test_a_provider_that_falls_back_to_the_cpu_is_a_skip(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime lists CUDA as available but the session runs on the CPU (its CUDA libraries did not load)."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    real = ort.InferenceSession

    def session(path: str, opts: Any, providers: list[Any]) -> Any:
        return real(path, opts, providers=["CPUExecutionProvider"])  # what the fallback leaves in use

    monkeypatch.setattr(ort, "InferenceSession", session)
    io = HostIO()
    with pytest.raises(
        MissingDependencyError, match=r"fell back to CPUExecutionProvider: CUDAExecutionProvider did not"
    ):
        OnnxRuntimeRunner(model, "cuda", io=io).activate()
    assert io.closed  # the stream opened for it is given back


def test_the_clash_of_onnxruntime_and_onnxruntime_gpu_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"}

    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(metadata, "version", version)
    text = ort_clash()
    assert "onnxruntime 1.22.0 and onnxruntime-gpu 1.22.0 are installed together" in text
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu" in text
    check = OnnxRuntimeRunner.availability("cuda")  # this host's onnxruntime has no CUDA provider
    assert (
        not check.ok
        and "CUDAExecutionProvider is not available" in check.reason
        and "installed together" in check.reason
    )
    del versions["onnxruntime-gpu"]
    assert ort_clash() == ""


def test_gpu_rows_say_host_latency_when_nothing_can_time_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    install_pycuda(monkeypatch, None)
    install_cudart(monkeypatch, None)
    assert gpu_variant("cuda") == "cuda-host-latency" and gpu_variant("cpu") == "cpu"


@pytest.mark.gpu
def test_cuda_provider_with_io_binding_matches_the_cpu(model: Path) -> None:
    """On a GPU host with onnxruntime-gpu: the CUDA row is device-timed, really on CUDA, and agrees with the CPU."""
    check = OnnxRuntimeRunner.availability("cuda")
    if not check.ok:
        pytest.skip(check.reason)
    x = np.random.default_rng(0).standard_normal((16, 1, 8, 8), dtype=np.float32)
    with OnnxRuntimeRunner(model, "cpu") as cpu, OnnxRuntimeRunner(model, "cuda") as gpu:
        want = cpu.infer(x)
        got = gpu.infer(x)
        assert gpu.details()["providers"][0] == "CUDAExecutionProvider"
        if gpu.times_device:
            _, times = gpu.infer_timed(x)
            assert times.compute_ms > 0
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
