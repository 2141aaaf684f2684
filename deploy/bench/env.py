"""The environment block of a benchmark: what ran where, so numbers are never read without their machine."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from typing import Any

from cplitool.toolchain.install import installed_versions

LIBRARIES = (
    "cplitool",
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "cuda-python",
    "cuda-bindings",
    "pycuda",
    "numpy",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    return installed_versions(LIBRARIES)


def gpu_info() -> dict[str, Any]:
    """GPU name, driver, CUDA as torch sees them; the driver from nvidia-smi when present."""
    info: dict[str, Any] = {}
    try:
        import torch

        if torch.cuda.is_available():
            i = torch.cuda.current_device()
            props = torch.cuda.get_device_properties(i)
            info = {
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}",
                "cuda_runtime": torch.version.cuda,
            }
    except ImportError:
        return info
    drivers = nvidia_smi("driver_version") if info else []
    if drivers:
        info["driver"] = drivers[0][0]
    return info


def nvidia_smi(fields: str) -> list[list[str]]:
    """One row per GPU of `nvidia-smi --query-gpu=<fields>`, or [] where it is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [[v.strip() for v in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]


def cuda_visible() -> bool:
    """Whether this host has a CUDA device at all (torch sees one, or nvidia-smi lists one)."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    return bool(nvidia_smi("index"))


def environment(threads: int | None = None) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "gpu": gpu_info(),
        "libraries": library_versions(),
    }


def device_label(device: str) -> str:
    """'cpu', or 'cuda:<GPU name>' so GPU baselines never compare across different cards."""
    if not device.startswith("cuda"):
        return "cpu"
    name = gpu_info().get("name", "unknown GPU")
    return f"cuda:{name}"
