"""The JSON sidecar written next to every engine: how, where and for what it was built.

An engine only runs on the TensorRT version and GPU architecture it was built for; the sidecar lets
cplitool say so plainly before TensorRT fails to deserialize it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from cplitool.deploy.trt.host import Host
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import write_json

FORMAT = "cplitool-trt-sidecar/1"


@dataclass
class Sidecar:
    engine: str  # engine file name
    onnx: str  # the ONNX file it was built from
    onnx_sha256: str
    precision: str  # fp32, fp16 or int8: taken from the graph (strongly typed network)
    input_name: str
    sample_shape: list[int]  # one sample, without the batch axis
    profiles: list[dict[str, int]]  # min/opt/max batch per optimization profile
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build_seconds: float
    opt_level: int
    workspace_mb: int
    timing_cache: str
    created: str
    format: str = FORMAT

    @staticmethod
    def path_for(engine_path: str | Path) -> Path:
        p = Path(engine_path)
        return p.with_name(p.name + ".json")

    def write(self, engine_path: str | Path) -> Path:
        return write_json(self.path_for(engine_path), dataclasses.asdict(self))

    @classmethod
    def read(cls, engine_path: str | Path) -> Sidecar:
        path = cls.path_for(engine_path)
        if not path.is_file():
            raise UsageError(f"{engine_path}: no sidecar {path.name} beside it; rebuild with `cplitool export --trt`")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"{path}: unreadable engine sidecar ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{path}: not a cplitool engine sidecar (expected format {FORMAT!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise UsageError(f"{path}: engine sidecar lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def precision_label(self) -> str:
        """'tf32' for an fp32 engine built for compute capability 8.0 or newer: TensorRT's TF32 builder flag is
        on by default (build.py leaves it), so its FP32 convolutions and matmuls may run in TF32."""
        major = self.compute_capability.split(".")[0]
        return "tf32" if self.precision == "fp32" and major.isdigit() and int(major) >= 8 else self.precision

    def check_host(self, host: Host, where: str | Path) -> None:
        """Raise a UsageError when this host's TensorRT version or GPU architecture differs from the build's."""
        problems = []
        if host.tensorrt_version != self.tensorrt_version:
            problems.append(f"TensorRT {self.tensorrt_version} (this host has {host.tensorrt_version})")
        if host.compute_capability != self.compute_capability:
            problems.append(
                f"a GPU of compute capability {self.compute_capability}, {self.gpu_name} "
                f"(this host has {host.compute_capability}, {host.gpu_name})"
            )
        if problems:
            raise UsageError(
                f"{where}: engine was built for {' and '.join(problems)}; engines are not portable across "
                "TensorRT versions or GPU architectures: rebuild it here with `cplitool export --trt`"
            )


def engine_precision_label(engine_path: str | Path, precision: str) -> str:
    """The bench label of an engine: its sidecar's precision_label, or `precision` when the sidecar is
    unreadable (the runner then fails on it with the reason)."""
    try:
        return Sidecar.read(engine_path).precision_label()
    except UsageError:
        return precision
