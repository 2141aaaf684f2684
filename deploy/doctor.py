"""`cplitool doctor`: what this host can run, and for what it cannot, the one install line that fixes it.

Facts first (Python, torch and its CUDA, GPUs and driver, TensorRT, the CUDA I/O libraries, ONNX Runtime
and its providers), then each GPU-dependent command with a verdict. Every check is the same one the
command itself makes (the runners' availability), so the doctor and the command never disagree.
"""

from __future__ import annotations

import ctypes.util
import platform
import re
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.env import nvidia_smi
from cplitool.deploy.runners.cuda.base import TRT_EXTRA
from cplitool.deploy.runners.cuda.choose import io_availability
from cplitool.deploy.runners.onnxruntime_runner import GPU_INSTALL, OnnxRuntimeRunner, installed_onnxruntimes, ort_clash
from cplitool.deploy.runners.tensorrt_runner import TensorRTRunner
from cplitool.deploy.runners.torch_runner import TorchRunner
from cplitool.toolchain.install import install_hint, installed_versions

TORCH_CUDA = "pip install --force-reinstall torch (PyPI's Linux x86-64 torch wheels include CUDA), on a host with an NVIDIA GPU and driver"
PROC_DRIVER = Path("/proc/driver/nvidia/version")
NO_DRIVER = "none (no NVIDIA kernel module, nvidia-smi or libcuda)"
WIDTH = 80
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


def driver_version() -> str | None:
    """The NVIDIA driver's version; "" where only libcuda shows one is installed; None where there is none.
    A CUDA library says "driver version is insufficient" both for an old driver and for no driver at all."""
    try:
        found = re.search(r"Kernel Module\s+([\d.]+)", PROC_DRIVER.read_text())
        if found:
            return found.group(1)
    except OSError:
        pass
    rows = nvidia_smi("driver_version")
    if rows:
        return rows[0][0]
    return "" if ctypes.util.find_library("cuda") else None


def driver_fact(driver: str | None) -> Fact:
    if driver is None:
        return Fact("NVIDIA driver", NO_DRIVER)
    return Fact("NVIDIA driver", driver or "installed (libcuda found; version unknown without nvidia-smi)")


def cuda_reason(reason: str, driver: str | None) -> str:
    """A CUDA library's "driver version is insufficient" read right: no driver, or a driver too old."""
    if "insufficient" not in reason:
        return reason
    if driver is None:
        return "no NVIDIA driver on this host"
    return f"the NVIDIA driver {driver or '(version unknown)'} is older than this CUDA runtime needs"


def torch_cuda(driver: str | None) -> tuple[str, str]:
    """(why torch sees no CUDA device, the fix): reinstalling torch helps only a CPU-only build."""
    import torch

    if not torch.version.cuda:
        return "torch is a CPU-only build", TORCH_CUDA
    build = f"torch {torch.__version__} is a CUDA {torch.version.cuda} build already"
    if driver is None:
        return f"no NVIDIA driver on this host ({build})", "a host with an NVIDIA GPU and driver"
    return (
        f"the driver {driver or '(version unknown)'} does not serve torch's CUDA {torch.version.cuda}",
        f"update the NVIDIA driver to one for CUDA {torch.version.cuda}, or install a torch built for an older CUDA",
    )


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


def library_facts(driver: str | None) -> list[Fact]:
    try:
        import tensorrt

        trt = f"{tensorrt.__version__}"
    except ImportError:
        trt = "not installed"
    io = io_availability()
    facts = [Fact("TensorRT", trt)]
    for name, dist in (("pycuda", "pycuda"), ("cuda-python", "cuda-python")):
        installed = version(dist) or (version("cuda-bindings") if name == "cuda-python" else "")
        state = "usable" if io[name].ok else cuda_reason(io[name].reason, driver)
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


def verdicts(driver: str | None) -> list[Verdict]:
    trt = TensorRTRunner.availability()
    usable = [n for n, c in io_availability().items() if c.ok]
    export_reason = trt.reason or ("" if usable else "no CUDA device is usable from torch or cuda-python")
    out = [
        verdict("export --trt", not export_reason, export_reason, "builds engines with TensorRT", TRT_EXTRA),
        verdict("bench --backend torch (cpu)", True, "", "fp32 eager, host latency", ""),
    ]
    cuda = TorchRunner.availability("cuda")
    why, fix = torch_cuda(driver) if not cuda.ok else ("", "")
    out.append(
        Verdict("bench --backend torch (cuda)", True, "fp32/tf32 and fp16, eager and CUDA graphs")
        if cuda.ok
        else Verdict("bench --backend torch (cuda)", False, why, fix)
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
    driver = driver_version()
    facts = [
        Fact("python", f"{platform.python_version()} ({sys.executable})"),
        *torch_facts(),
        driver_fact(driver),
        *library_facts(driver),
    ]
    return {
        "facts": [asdict(f) for f in facts],
        "commands": [asdict(v) for v in verdicts(driver)],
        "gpu_host": driver is not None,
    }


def wrapped(text: str, indent: int) -> list[str]:
    """`text` in lines of WIDTH, the later ones indented under the first's text."""
    return textwrap.wrap(text, WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False) or [text]


def render(doc: dict[str, Any]) -> list[str]:
    """The screen, in 80 columns: aligned facts, then one line per command and an indented fix under each
    that cannot run; on a host without an NVIDIA driver the install fixes, which cannot help there, give way
    to one line (they stay in --json)."""
    width = max(len(f["name"]) for f in doc["facts"])
    lines = ["host"]
    for f in doc["facts"]:
        lines += wrapped(f"  {f['name']:<{width}}  {f['value']}", width + 4)
    lines.append("commands")
    for v in doc["commands"]:
        lines += wrapped(f"  {'ok ' if v['runs'] else 'no '} {v['command']}: {v['why']}", 6)
        if v["fix"] and doc.get("gpu_host", True):
            lines += wrapped(f"       fix: {v['fix']}", 12)
    if not doc.get("gpu_host", True) and any(v["fix"] for v in doc["commands"]):
        lines += wrapped(
            "GPU commands need an NVIDIA GPU and driver, so no install makes them run here; "
            "the install lines are in `cplitool doctor --json` and docs/gpu-hosts.md",
            0,
        )
    return lines
