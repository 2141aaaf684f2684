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
    monkeypatch.setattr(doctor, "driver_version", lambda: None)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    return versions


CPU_LINES = [
    "  NVIDIA driver  none (no NVIDIA kernel module, nvidia-smi or libcuda)",
    "  TensorRT       not installed",
    "  cuda-python    13.5.0: no NVIDIA driver on this host",  # not cudart's "driver version is insufficient"
    "  CUDA I/O       none usable",
    "  ONNX Runtime   onnxruntime 1.22.0",
    "  providers      CPUExecutionProvider",
    "  ORT clash      none",
    "commands",
    "  no  export --trt: tensorrt is not installed",
    "  ok  bench --backend torch (cpu): fp32 eager, host latency",
    "  ok  bench --backend onnxruntime (cpu): host latency",
    "  no  bench --backend onnxruntime (cuda): CUDAExecutionProvider is not available",
    "      (installed: CPUExecutionProvider)",
    "  no  bench --backend tensorrt: tensorrt is not installed",
    "GPU commands need an NVIDIA GPU and driver, so no install makes them run here;",
]


def test_cpu_host_screen(cpu_host: dict[str, str], cli: Any) -> None:
    result = cli("doctor")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "host" and lines[1].startswith("  python         3.")
    assert lines[2].startswith("  torch          ") and "sees 0 CUDA device(s)" in lines[2]
    assert "  GPU            none visible (no nvidia-smi, and torch sees no CUDA device)" in lines
    missing = [line for line in CPU_LINES if line not in lines]
    assert missing == []
    assert max(len(line) for line in lines[1:]) <= 80  # the python line holds the venv's path
    assert not any("fix:" in line for line in lines)  # no install helps without a driver: one line says so


@pytest.mark.parametrize(("cuda", "driver"), [("13.0", None), ("13.0", "470.82"), (None, None)])
def test_torch_cuda_advice_tells_no_driver_from_an_old_one(
    cpu_host: dict[str, str], monkeypatch: pytest.MonkeyPatch, cuda: str | None, driver: str | None
) -> None:
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(doctor, "driver_version", lambda: driver)
    doc = doctor.diagnose()
    verdict = {v["command"]: v for v in doc["commands"]}["bench --backend torch (cuda)"]
    facts = {f["name"]: f["value"] for f in doc["facts"]}
    if cuda is None:  # a CPU-only torch: reinstalling from PyPI is the fix
        assert "--force-reinstall torch" in verdict["fix"]
        return
    assert "force-reinstall" not in verdict["fix"]  # a CUDA torch is never told to reinstall torch
    if driver is None:
        assert "no NVIDIA driver" in verdict["why"] and "CUDA 13.0 build already" in verdict["why"]
        assert facts["cuda-python"] == "13.5.0: no NVIDIA driver on this host"
    else:
        assert verdict["fix"].startswith("update the NVIDIA driver") and "470.82" in verdict["why"]
        assert "driver 470.82 is older" in facts["cuda-python"] and facts["NVIDIA driver"] == "470.82"
        assert any(line.startswith("       fix:") for line in doctor.render(doc))


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
    monkeypatch.setattr(doctor, "driver_version", lambda: "570.86")
    lines = cli("doctor").out.splitlines()
    assert "  GPU 0          NVIDIA H200, 143771 MiB, driver 570.86" in lines
    assert "  TensorRT       10.9.0" in lines and "  CUDA I/O       cuda-python" in lines
    assert "  ok  export --trt: builds engines with TensorRT" in lines
    assert "  ok  bench --backend tensorrt: engines, cuda-python I/O, GPU compute" in lines
    screen = " ".join(line.strip() for line in lines)  # long facts wrap at 80 columns
    assert "ORT clash      onnxruntime 1.22.0 and onnxruntime-gpu 1.22.0 are installed together" in screen
