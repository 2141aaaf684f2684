"""`cplitool doctor` on a CPU host (this machine, with its facts pinned) and on a faked GPU host."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from typing import Any

import pytest
import torch

import cplitool.deploy.doctor as doctor
from cplitool.toolchain.install import install_hint  # the pip line fits how cplitool was installed
from tests.deploy.gpu_fakes import FakeGPU, fake_tensorrt, install_cudart, install_pycuda

VERSIONS = {"onnxruntime": "1.22.0", "cuda-bindings": "13.5.0"}


@pytest.fixture
def cpu_host(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No GPU, no TensorRT, no pycuda; cuda-python installed but the driver too old (as here)."""
    import onnxruntime as ort

    versions = dict(VERSIONS)

    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    install_pycuda(monkeypatch, None)
    install_cudart(monkeypatch, FakeGPU(), devices=-1)
    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(doctor, "version", lambda name: versions.get(name, ""))
    monkeypatch.setattr(doctor, "nvidia_smi", lambda fields: [])
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    return versions


CPU_LINES = [
    "  TensorRT      not installed",
    f"  pycuda        not installed ({install_hint('pycuda')}: optional, builds from source, needs a CUDA toolkit)",
    "  cuda-python   13.5.0: CUDA runtime error in cudaGetDeviceCount: CUDA driver version is insufficient for CUDA "
    "runtime version",
    "  CUDA I/O      none usable",
    "  ONNX Runtime  onnxruntime 1.22.0",
    "  providers     CPUExecutionProvider",
    "  ORT clash     none",
    "commands",
    "  no  export --trt: tensorrt is not installed",
    f"       fix: {install_hint('trt')} (tensorrt and cuda-python wheels) on a host with an NVIDIA GPU and driver",
    "  ok  bench --backend torch (cpu): fp32 eager, host latency",
    "  ok  bench --backend onnxruntime (cpu): host latency",
    "  no  bench --backend onnxruntime (cuda): CUDAExecutionProvider is not available (installed: CPUExecutionProvider)",
    "       fix: pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu>=1.18'",
    "  no  bench --backend tensorrt: tensorrt is not installed",
]


def test_cpu_host_screen(cpu_host: dict[str, str], cli: Any) -> None:
    result = cli("doctor")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "host" and lines[1].startswith("  python        3.")
    assert lines[2].startswith("  torch         ") and "sees 0 CUDA device(s)" in lines[2]
    assert "  GPU           none visible (no nvidia-smi, and torch sees no CUDA device)" in lines
    missing = [line for line in CPU_LINES if line not in lines]
    assert missing == []
    assert any(line.startswith("  no  bench --backend torch (cuda): torch sees no CUDA device") for line in lines)


def test_json_gives_the_same(cpu_host: dict[str, str], cli: Any) -> None:
    result = cli("doctor", "--json")
    assert result.code == 0
    doc = json.loads(result.out)
    verdicts = {v["command"]: v for v in doc["commands"]}
    assert verdicts["export --trt"] == {
        "command": "export --trt",
        "runs": False,
        "why": "tensorrt is not installed",
        "fix": f"{install_hint('trt')} (tensorrt and cuda-python wheels) on a host with an NVIDIA GPU and driver",
    }
    assert verdicts["bench --backend torch (cpu)"]["runs"] and not verdicts["bench --backend tensorrt"]["runs"]
    assert {f["name"]: f["value"] for f in doc["facts"]}["ORT clash"] == "none"


def test_gpu_host_with_tensorrt_cuda_python_and_the_ort_clash(
    cpu_host: dict[str, str], monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    gpu = FakeGPU()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(gpu, version="10.9.0"))
    install_cudart(monkeypatch, gpu, devices=1)
    cpu_host["onnxruntime-gpu"] = "1.22.0"  # installed beside onnxruntime
    monkeypatch.setattr(doctor, "nvidia_smi", lambda fields: [["0", "NVIDIA H200", "570.86", "143771 MiB"]])
    lines = cli("doctor").out.splitlines()
    assert "  GPU 0         NVIDIA H200, 143771 MiB, driver 570.86" in lines
    assert "  TensorRT      10.9.0" in lines and "  CUDA I/O      cuda-python" in lines
    assert "  ok  export --trt: builds engines with TensorRT" in lines
    assert "  ok  bench --backend tensorrt: engines, cuda-python I/O, GPU compute" in lines
    clash = next(line for line in lines if line.startswith("  ORT clash"))
    assert "onnxruntime 1.22.0 and onnxruntime-gpu 1.22.0 are installed together" in clash
