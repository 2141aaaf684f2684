"""GPU check: one command, at most 8 minutes, for a GPU host with PyTorch+CUDA but no TensorRT and no network.

1. runs the GPU-marked tests (pytest -m gpu);
2. benches dense vs pruned vgg16_cifar and resnet56 (random weights, synthetic inputs: latency only) with
   the torch CUDA runner at batch 1, 64 and 256, FP32 and FP16, eager and CUDA graphs, interleaved;
3. where a pycuda source archive (pycuda-*.tar.gz) lies beside this script, builds it there (offline:
   put the archives of its dependencies beside it too) and exercises the pycuda buffer, stream and
   event code of deploy/runners/pycuda_io.py;
4. writes benchmarks/results/gpu_check_<host>.json and .md.

`--dry-run` runs the same code path on the CPU with tiny settings and the small siblings quick_vgg and
resnet20 (what the fast test does); what needs a GPU (FP16, CUDA graphs, the pycuda build) is then
recorded as skipped with the reason.

    make gpu-check            # python3 benchmarks/gpu_check.py (the .venv's python when present)
    python3 benchmarks/gpu_check.py --dry-run --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deploy.bench.compare import interleaved  # noqa: E402
from deploy.bench.env import device_label, environment  # noqa: E402
from deploy.bench.timing import TimingConfig  # noqa: E402
from deploy.runners.torch_runner import TorchRunner  # noqa: E402
from toolchain.models import input_shape  # noqa: E402

VARIANTS = (("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True))


@dataclass(frozen=True)
class Settings:
    device: str
    archs: tuple[str, ...]
    batches: tuple[int, ...]
    timing: TimingConfig
    repeats: int
    test_paths: tuple[str, ...]
    budget_s: float


FULL = Settings("cuda", ("vgg16_cifar", "resnet56"), (1, 64, 256), TimingConfig(200.0, 1.0, 10), 2, ("tests",), 450.0)
# The dry run prunes the small siblings (plain chain and residual net) to keep the fast test fast.
DRY = Settings(
    "cpu", ("quick_vgg", "resnet20"), (1, 2), TimingConfig(5.0, 0.02, 2), 1, ("tests/deploy/runners",), 120.0
)


class Budget:
    """Stops optional work before the 8-minute limit; what did not fit is recorded, not dropped."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def run_gpu_tests(s: Settings, budget: Budget) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *s.test_paths]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=max(30.0, min(180.0, budget.left() / 2))
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "command": " ".join(cmd), "reason": "timed out"}
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    if proc.returncode != 0 and "No module named pytest" in proc.stderr:
        return {"status": "skipped", "reason": "pytest is not installed in this Python", "command": " ".join(cmd)}
    summary = next(
        (line for line in reversed(tail) if re.search(r"passed|failed|skipped|deselected|no tests", line)), ""
    )
    ok = proc.returncode in (0, 5)  # 5: nothing collected
    return {
        "status": "ok" if ok else "failed",
        "returncode": proc.returncode,
        "summary": summary,
        "command": " ".join(cmd),
        "tail": tail,
    }


def bench_models(
    s: Settings, budget: Budget
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    from pruned_models import pruned_pair

    measurements: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    label = device_label(s.device)
    for arch in s.archs:
        try:
            pair = pruned_pair(arch, 0.5)
        except RuntimeError as e:
            skipped.append({"arch": arch, "reason": str(e)})
            continue
        shape = input_shape(arch)
        models = {"dense": pair.dense, "pruned": pair.pruned}
        for precision, graphs in VARIANTS:
            variant = "cudagraph" if graphs else "eager"
            if s.device == "cpu" and (precision != "fp32" or graphs):
                skipped.append(
                    {
                        "arch": arch,
                        "precision": precision,
                        "variant": variant,
                        "reason": "dry run on the CPU: FP16 and CUDA graphs need a GPU",
                    }
                )
                continue
            for batch in s.batches:
                if budget.left() < 20:
                    skipped.append(
                        {
                            "arch": arch,
                            "precision": precision,
                            "variant": variant,
                            "batch": str(batch),
                            "reason": "time budget of the check used up",
                        }
                    )
                    continue
                key = {
                    "arch": arch,
                    "backend": "torch",
                    "device": label,
                    "precision": precision,
                    "variant": variant,
                    "batch": batch,
                }
                x = np.random.default_rng(batch).standard_normal((batch, *shape), dtype=np.float32)
                runners = {m: TorchRunner(models[m], s.device, precision, graphs) for m in models}
                try:
                    with runners["dense"], runners["pruned"]:
                        c = interleaved(runners, {"dense": x, "pruned": x}, s.timing, s.repeats)
                except torch.cuda.OutOfMemoryError as e:
                    skipped.append({**{k: str(v) for k, v in key.items()}, "reason": f"out of GPU memory: {e}"})
                    continue
                sources = {m: f"{arch} {m} ({pair.how})" for m in models}
                measurements += c.measurement_rows(key, sources)
                comparisons.append(c.comparison_row(key, pair.macs_ratio))
                r = c.ratio.median if c.ratio else float("nan")
                print(
                    f"  {arch} {precision} {variant} b{batch}: pruned/dense {r:.3f} (MACs {pair.macs_ratio:.3f})",
                    flush=True,
                )
    return measurements, comparisons, skipped


PYCUDA_SNIPPET = """
import json, numpy as np
from deploy.runners.pycuda_io import CudaIO
io = CudaIO(); io.open()
try:
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32), dtype=np.float32)
    src, dst = io.buffer(x.shape, np.float32), io.buffer(x.shape, np.float32)
    runs = [io.run([(src, x)], lambda h: io.copy_device(dst, src), [dst]) for _ in range(20)]
    assert np.array_equal(dst.host, x), "round trip through the device changed the data"
    print(json.dumps({"h2d_ms": [t.h2d_ms for t in runs], "copy_ms": [t.compute_ms for t in runs], "d2h_ms": [t.d2h_ms for t in runs]}))
finally:
    io.close()
"""


def check_pycuda(s: Settings, budget: Budget) -> dict[str, Any]:
    archives = sorted(HERE.glob("pycuda-*.tar.gz"))
    if not archives:
        return {
            "status": "skipped",
            "reason": f"no pycuda source archive (pycuda-*.tar.gz) beside {Path(__file__).name}",
        }
    archive = archives[-1]
    if s.device == "cpu":
        return {
            "status": "skipped",
            "reason": f"dry run on the CPU: would build {archive.name} (needs CUDA headers and a GPU)",
        }
    target = HERE / ".pycuda-build"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-build-isolation",
        "--find-links",
        str(HERE),
        "--target",
        str(target),
        str(archive),
    ]
    try:
        build = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, budget.left() - 60))
    except subprocess.TimeoutExpired:
        return {"status": "failed", "archive": archive.name, "reason": "build timed out"}
    if build.returncode != 0:
        return {
            "status": "failed",
            "archive": archive.name,
            "command": " ".join(cmd),
            "tail": (build.stdout + build.stderr).strip().splitlines()[-15:],
        }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-c", PYCUDA_SNIPPET], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )
    if proc.returncode != 0:
        return {"status": "failed", "archive": archive.name, "tail": proc.stderr.strip().splitlines()[-15:]}
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    medians = {k: float(np.median(v)) for k, v in times.items()}
    return {"status": "ok", "archive": archive.name, "median_ms": medians, "round_trip": "equal"}


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# GPU check ({'dry run on the CPU' if doc['dry_run'] else doc['environment']['gpu'].get('name', 'GPU')})",
        "",
    ]
    lines += [
        f"Command: `{doc['command']}`, {doc['seconds']:.0f} s. Environment: `{json.dumps(doc['environment'])}`",
        "",
    ]
    lines += [
        f"GPU tests: {doc['tests'].get('status')} {doc['tests'].get('summary', doc['tests'].get('reason', ''))}",
        "",
    ]
    lines += [
        "| model | precision | variant | batch | pruned/dense | spread | MACs ratio |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for c in doc["comparisons"]:
        r = c["ratio"]
        lines.append(
            f"| {c['arch']} | {c['precision']} | {c['variant']} | {c['batch']} | {r['median']:.3f} | {r['min']:.3f}-{r['max']:.3f} | {c['macs_ratio']:.3f} |"
        )
    lines += ["", f"pycuda: {json.dumps(doc['pycuda'])}", ""]
    lines += [f"- skipped: {json.dumps(s)}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GPU check: GPU tests, dense vs pruned CUDA latency, pycuda plumbing")
    ap.add_argument("--dry-run", action="store_true", help="same code path on the CPU with tiny settings")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and Markdown results")
    args = ap.parse_args(argv)
    s = DRY if args.dry_run else FULL
    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"gpu_check: torch {torch.__version__} sees no CUDA device; use --dry-run on a machine without a GPU",
            file=sys.stderr,
        )
        return 2
    start = time.monotonic()
    budget = Budget(s.budget_s)
    print("gpu_check: GPU-marked tests ...", flush=True)
    tests = run_gpu_tests(s, budget)
    print(f"  {tests['status']}: {tests.get('summary', tests.get('reason', ''))}", flush=True)
    print("gpu_check: dense vs pruned with the torch CUDA runner ...", flush=True)
    measurements, comparisons, skipped = bench_models(s, budget)
    print("gpu_check: pycuda ...", flush=True)
    pycuda = check_pycuda(s, budget)
    print(f"  {pycuda['status']}: {pycuda.get('reason', pycuda.get('median_ms', ''))}", flush=True)
    doc = {
        "schema": "cplitool-gpu-check/1",
        "dry_run": args.dry_run,
        "command": " ".join([Path(sys.executable).name, *sys.argv])
        if argv is None
        else f"gpu_check.py {' '.join(argv)}",
        "seconds": time.monotonic() - start,
        "settings": {"batches": s.batches, "timing": vars(s.timing), "repeats": s.repeats},
        "environment": environment(torch.get_num_threads()),
        "tests": tests,
        "measurements": measurements,
        "comparisons": comparisons,
        "skipped": skipped,
        "pycuda": pycuda,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check_dryrun" if args.dry_run else f"gpu_check_{platform.node() or 'host'}"
    (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(doc))
    print(f"gpu_check: {doc['seconds']:.0f} s -> {args.out / stem}.json", flush=True)
    failed = tests["status"] == "failed" or pycuda["status"] == "failed"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
