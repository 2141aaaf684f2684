"""`cplitool doctor`: what this host can run, and for what it cannot, the one install line that fixes it.

Facts first (Python, torch and its CUDA, GPUs and driver, TensorRT, the CUDA I/O libraries, ONNX Runtime
and its providers), then each GPU-dependent command with a verdict. Every check is the same one the
command itself makes (the runners' availability), so the doctor and the command never disagree.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from cplitool.deploy.bench.env import nvidia_smi
from cplitool.deploy.runners.cuda.base import TRT_EXTRA
from cplitool.deploy.runners.cuda.choose import io_availability
from cplitool.deploy.runners.onnxruntime_runner import GPU_INSTALL, OnnxRuntimeRunner, installed_onnxruntimes, ort_clash
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.deploy.runners.torch_runner import TorchRunner
from cplitool.toolchain.install import install_hint, installed_versions

TORCH_CUDA = "pip install --force-reinstall torch (PyPI's Linux x86-64 torch wheels include CUDA), on a host with an NVIDIA GPU and driver"
PYCUDA = f"{install_hint('pycuda')}: optional, builds from source, needs a CUDA toolkit"


@dataclass
class Fact:
    name: str
    value: str


@dataclass
class Verdict:
    command: str
    runs: bool
    why: str = ""  # why not, or how it runs
    fix: str = ""  # the one install line that makes it run


def version(dist: str) -> str:
    return installed_versions([dist]).get(dist, "")


def torch_facts() -> list[Fact]:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    facts = [
        Fact(
            "torch",
            f"{torch.__version__} ({build}); sees {torch.cuda.device_count() if torch.cuda.is_available() else 0} CUDA device(s)",
        )
    ]
    rows = nvidia_smi("index,name,driver_version,memory.total")
    for row in rows:
        facts.append(Fact(f"GPU {row[0]}", f"{row[1]}, {row[3]}, driver {row[2]}"))
    if not rows and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            facts.append(Fact(f"GPU {i}", f"{torch.cuda.get_device_name(i)}, compute capability {major}.{minor}"))
    if not rows and not torch.cuda.is_available():
        facts.append(Fact("GPU", "none visible (no nvidia-smi, and torch sees no CUDA device)"))
    return facts


def library_facts() -> list[Fact]:
    try:
        import tensorrt

        trt = f"{tensorrt.__version__}"
    except ImportError:
        trt = "not installed"
    io = io_availability()
    facts = [Fact("TensorRT", trt)]
    for name, dist in (("pycuda", "pycuda"), ("cuda-python", "cuda-python")):
        installed = version(dist) or (version("cuda-bindings") if name == "cuda-python" else "")
        state = "usable" if io[name].ok else io[name].reason
        fix = f" ({PYCUDA})" if name == "pycuda" else f" ({TRT_EXTRA})"
        facts.append(Fact(name, f"{installed}: {state}" if installed else f"not installed{fix}"))
    facts.append(Fact("CUDA I/O", ", ".join(n for n, c in io.items() if c.ok) or "none usable"))
    found = installed_onnxruntimes()
    dists = ", ".join(f"{n} {v}" for n, v in found.items()) or "not installed"
    try:
        import onnxruntime as ort

        providers = ", ".join(ort.get_available_providers())
    except ImportError:
        providers = "none"
    facts += [Fact("ONNX Runtime", dists), Fact("providers", providers)]
    facts.append(Fact("ORT clash", ort_clash() or "none"))
    return facts


def verdict(command: str, ok: bool, reason: str, how: str, fix: str) -> Verdict:
    """A command's line: how it runs, or why not (the runner's reason without the install advice, which
    goes on the fix line once)."""
    if ok:
        return Verdict(command, True, how)
    cuts = [i for i in (reason.find(t) for t in (fix, GPU_INSTALL, TRT_EXTRA) if t) if i > 0]
    why = reason[: min(cuts)] if cuts else reason
    why = why.rstrip(" :;(").removesuffix("for the GPU providers").rstrip(" :;(")
    return Verdict(command, False, why, fix)


def verdicts() -> list[Verdict]:
    trt = TensorRTRunner.availability()
    usable = [n for n, c in io_availability().items() if c.ok]
    export_reason = trt.reason or ("" if usable else "no CUDA device is usable from torch or cuda-python")
    out = [
        verdict("export --trt", not export_reason, export_reason, "builds engines with TensorRT", TRT_EXTRA),
        verdict("bench --backend torch (cpu)", True, "", "fp32 eager, host latency", ""),
    ]
    cuda = TorchRunner.availability("cuda")
    out.append(
        verdict(
            "bench --backend torch (cuda)",
            cuda.ok,
            cuda.reason,
            "fp32/tf32 and fp16, eager and CUDA graphs",
            TORCH_CUDA,
        )
    )
    gpu_how = "GPU compute (IO binding)" if usable else "host latency (no CUDA I/O library)"
    for provider, label, how, fix in (
        ("cpu", "cpu", "host latency", "pip install onnxruntime"),
        ("cuda", "cuda", gpu_how, GPU_INSTALL),
        ("tensorrt", "TensorRT EP", gpu_how, f"{GPU_INSTALL} && pip install tensorrt"),
    ):
        check = OnnxRuntimeRunner.availability(provider)
        out.append(verdict(f"bench --backend onnxruntime ({label})", check.ok, check.reason, how, fix))
    how = f"engines, {usable[0]} I/O, GPU compute" if usable else ""
    out.append(verdict("bench --backend tensorrt", trt.ok, trt.reason, how, TRT_EXTRA))
    return out


def diagnose() -> dict[str, Any]:
    """Everything the doctor shows, as plain data (what --json prints)."""
    facts = [Fact("python", f"{platform.python_version()} ({sys.executable})"), *torch_facts(), *library_facts()]
    return {"facts": [asdict(f) for f in facts], "commands": [asdict(v) for v in verdicts()]}


def render(doc: dict[str, Any]) -> list[str]:
    """The screen: aligned facts, then one line per command and an indented fix under each that cannot run."""
    width = max(len(f["name"]) for f in doc["facts"])
    lines = ["host"] + [f"  {f['name']:<{width}}  {f['value']}" for f in doc["facts"]]
    lines.append("commands")
    for v in doc["commands"]:
        lines.append(f"  {'ok ' if v['runs'] else 'no '} {v['command']}: {v['why']}")
        if v["fix"]:
            lines.append(f"       fix: {v['fix']}")
    return lines
