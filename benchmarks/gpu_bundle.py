"""`make gpu-bundle`: the pure-Python wheels that benchmarks/gpu_check.py needs and a GPU host may lack, for
an offline host with only its system python (3.12; torch, onnx, onnxruntime, pytest already there).

Writes gpu-bundle/ (git-ignored, a few MiB): the wheels at the versions this .venv has, checked to be
py3-none-any (any Python, any platform). gpu_check.py puts each wheel on its path (Python imports pure
wheels as zip archives) and passes them on to its children in PYTHONPATH. Needs the network once, here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "gpu-bundle"
# torch_pruning and onnxslim: the pruner and the export's simplifier; colorama: onnxslim's one requirement
# that such a host lacks (sympy, packaging and ml_dtypes come with torch, pytest and onnx); onnxscript and
# onnx_ir: torch's ONNX exporter imports them; pytest-timeout: the test suite's per-test timeout.
PACKAGES = ("torch-pruning", "onnxslim", "colorama", "onnxscript", "onnx-ir", "pytest-timeout")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def download(out: Path, python: str) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", python]
    cmd += ["--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(out)]
    cmd += [f"{p}=={version(p)}" for p in PACKAGES]
    subprocess.run(cmd, check=True)
    return sorted(out.glob("*.whl"))


def check_pure(wheels: list[Path]) -> None:
    for w in wheels:
        python_tag = w.name.split("-")[-3]
        if not (w.name.endswith("-none-any.whl") and "py3" in python_tag.split(".")):
            raise SystemExit(f"gpu-bundle: {w.name} is not a pure-Python wheel (py3-none-any)")
        with zipfile.ZipFile(w) as z:
            z.testzip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=BUNDLE)
    ap.add_argument("--python", default="3.12", help="the GPU host's Python version")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.whl"):
        old.unlink()
    wheels = download(args.out, args.python)
    check_pure(wheels)
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"gpu-bundle: {len(wheels)} wheels, {size:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
