"""Engine sidecars, host checks and the loader's error paths, with a stand-in `tensorrt` module (no GPU)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cplitool.deploy.trt import engine as engine_module
from cplitool.deploy.trt.build import network_flags
from cplitool.deploy.trt.engine import Sidecar, load_engine
from cplitool.deploy.trt.host import Host, require_tensorrt
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError, UsageError
from cplitool.toolchain.install import install_hint

BUILT_ON = Host("10.8.0.43", "NVIDIA A100-SXM4-40GB", "8.0")


def sidecar(**changes: Any) -> Sidecar:
    fields: dict[str, Any] = dict(
        engine="dense.fp16.engine",
        onnx="onnx/dense.fp16.onnx",
        onnx_sha256="0" * 64,
        precision="fp16",
        input_name="input",
        sample_shape=[3, 32, 32],
        profiles=[{"min": 1, "opt": 64, "max": 256}],
        tensorrt_version=BUILT_ON.tensorrt_version,
        gpu_name=BUILT_ON.gpu_name,
        compute_capability=BUILT_ON.compute_capability,
        build_seconds=12.5,
        opt_level=3,
        workspace_mb=4096,
        timing_cache="trt.cache",
        created="2026-01-01T00:00:00+0000",
    )
    return Sidecar(**{**fields, **changes})


class FakeLogger:
    WARNING = 2

    def __init__(self, _level: int) -> None:
        pass


class FakeRuntime:
    """Stands in for tensorrt.Runtime: returns what it is told to, and records that it was asked."""

    result: Any = object()
    calls = 0

    def __init__(self, _logger: Any) -> None:
        pass

    def deserialize_cuda_engine(self, data: bytes) -> Any:
        FakeRuntime.calls += 1
        return FakeRuntime.result


@pytest.fixture
def engine_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dense.fp16.engine"
    path.write_bytes(b"serialized engine")
    sidecar().write(path)
    fake = SimpleNamespace(__version__=BUILT_ON.tensorrt_version, Runtime=FakeRuntime, Logger=FakeLogger)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(FakeRuntime, "calls", 0)
    return path


def test_sidecar_round_trip_and_path(tmp_path: Path) -> None:
    engine = tmp_path / "pruned.int8.engine"
    written = sidecar(precision="int8").write(engine)
    assert written == Sidecar.path_for(engine) == tmp_path / "pruned.int8.engine.json"
    assert Sidecar.read(engine) == sidecar(precision="int8")
    assert json.loads(written.read_text())["format"] == "cplitool-trt-sidecar/1"


def test_missing_or_foreign_sidecar_is_a_usage_error(tmp_path: Path) -> None:
    engine = tmp_path / "x.engine"
    with pytest.raises(UsageError, match=r"no sidecar x\.engine\.json"):
        Sidecar.read(engine)
    Sidecar.path_for(engine).write_text('{"format": "something else"}')
    with pytest.raises(UsageError, match="not a cplitool engine sidecar"):
        Sidecar.read(engine)
    Sidecar.path_for(engine).write_text("{truncated")
    with pytest.raises(UsageError, match="unreadable engine sidecar"):
        Sidecar.read(engine)


def test_host_check_names_what_differs() -> None:
    sidecar().check_host(BUILT_ON, "e.engine")  # same host: fine
    with pytest.raises(UsageError, match=r"built for TensorRT 10\.8\.0\.43 \(this host has 10\.12\.0\)"):
        sidecar().check_host(Host("10.12.0", BUILT_ON.gpu_name, "8.0"), "e.engine")
    with pytest.raises(UsageError, match=r"compute capability 8\.0.*this host has 9\.0, NVIDIA H100.*rebuild"):
        sidecar().check_host(Host(BUILT_ON.tensorrt_version, "NVIDIA H100", "9.0"), "e.engine")


def test_load_engine_refuses_another_gpu_before_deserializing(
    engine_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "current_host", lambda: Host(BUILT_ON.tensorrt_version, "NVIDIA L4", "8.9"))
    with pytest.raises(UsageError, match=r"dense\.fp16\.engine: engine was built for a GPU of compute capability 8\.0"):
        load_engine(engine_file)
    assert FakeRuntime.calls == 0


def test_load_engine_on_the_build_host(engine_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "current_host", lambda: BUILT_ON)
    monkeypatch.setattr(FakeRuntime, "result", "the engine")
    engine, side = load_engine(engine_file)
    assert engine == "the engine" and side.precision == "fp16" and FakeRuntime.calls == 1
    monkeypatch.setattr(FakeRuntime, "result", None)  # TensorRT could not deserialize it
    with pytest.raises(CplitoolError, match="could not deserialize the engine"):
        load_engine(engine_file)


def test_missing_engine_and_missing_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="TensorRT engine not found"):
        load_engine(tmp_path / "none.engine")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match=re.escape(install_hint("trt"))):
        require_tensorrt()


@pytest.mark.parametrize(("version", "expected"), [("10.8.0", 1 << 5), ("11.0.0", 0)])
def test_strongly_typed_flag_on_tensorrt_10_and_11(version: str, expected: int) -> None:
    flags = SimpleNamespace(STRONGLY_TYPED=5)
    assert network_flags(SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=flags)) == expected


def test_tensorrt_9_is_refused() -> None:
    with pytest.raises(MissingDependencyError, match="TensorRT >= 10"):
        network_flags(SimpleNamespace(__version__="9.3.0", NetworkDefinitionCreationFlag=SimpleNamespace()))


def test_fp32_engines_for_ampere_and_newer_are_labelled_tf32(tmp_path: Path) -> None:
    """TensorRT's TF32 flag is on by default, so an fp32 engine for compute capability >= 8.0 is a tf32 row."""
    from cplitool.deploy.trt.sidecar import engine_precision_label

    assert sidecar(precision="fp32").precision_label() == "tf32"  # built for 8.0
    assert sidecar(precision="fp32", compute_capability="7.5").precision_label() == "fp32"
    assert sidecar(precision="fp16").precision_label() == "fp16"
    engine = tmp_path / "dense.fp32.engine"
    sidecar(precision="fp32", compute_capability="9.0").write(engine)
    assert engine_precision_label(engine, "fp32") == "tf32"
    assert engine_precision_label(tmp_path / "none.engine", "fp32") == "fp32"  # no sidecar: the runner will say
