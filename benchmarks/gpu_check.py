"""GPU check: one command, within --budget seconds (default 270), for a GPU host with PyTorch+CUDA but no TensorRT and no network.

1. runs the GPU-marked tests (pytest -m gpu);
2. benches dense vs pruned vgg16_cifar and resnet56 (random weights, synthetic inputs: latency only) with
   the torch CUDA runner at batch 1, 64 and 256, FP32 (labelled tf32 where torch lets cuDNN use TF32)
   and FP16, eager and CUDA graphs, interleaved;
3. round-trips data through each CUDA I/O library the TensorRT runner can use (torch, cuda-python,
   pycuda: deploy/runners/cuda/choose.py) and times the copies; where a pycuda source archive
   (pycuda-*.tar.gz) lies beside this script, builds it first (offline: put the archives of its
   dependencies beside it too);
4. writes benchmarks/results/gpu_check_<host>.json and .md (the host name made filename-safe).

Wheels in gpu-bundle/ (`make gpu-bundle`: torch_pruning, onnxslim, ... for a host without network) go
on its path and, in PYTHONPATH, on its children's, after what is already there. `--budget` (default 270 s,
what a device call leaves) bounds the optional work.

Every step, and every benchmark configuration, catches its own failure and records
{"status": "failed", "reason": ...}; the JSON is always written and the exit code is 1 when anything
failed. `--dry-run` runs the same code path on the CPU with tiny settings and the small siblings
quick_vgg and resnet20 (what the fast test does); what needs a GPU is then recorded as skipped with
the reason.

    make gpu-check            # python3 benchmarks/gpu_check.py (the .venv's python when present)
    python3 benchmarks/gpu_check.py --dry-run --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import dataclasses
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
BUNDLE = REPO / "gpu-bundle"


def use_bundle(bundle: Path) -> list[str]:
    """Put the bundle's pure-Python wheels (imported as zip archives) after sys.path's entries, and in
    PYTHONPATH after the caller's, so children find them too; installed packages still come first."""
    wheels = [str(w) for w in sorted(bundle.glob("*.whl"))]
    sys.path.extend(w for w in wheels if w not in sys.path)
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*kept, str(REPO), *wheels]))
    return wheels


sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cplitool.deploy.bench.compare import interleaved  # noqa: E402
from cplitool.deploy.bench.env import device_label, environment  # noqa: E402
from cplitool.deploy.bench.timing import TimingConfig  # noqa: E402
from cplitool.deploy.runners.torch_runner import TorchRunner, precision_label  # noqa: E402
from cplitool.toolchain.models import input_shape  # noqa: E402

VARIANTS = (("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True))
PYCUDA_TARGET = HERE / ".pycuda-build"
IO_LIBRARIES = ("torch", "cuda-python", "pycuda")


@dataclass(frozen=True)
class Settings:
    device: str
    archs: tuple[str, ...]
    batches: tuple[int, ...]
    timing: TimingConfig
    repeats: int
    test_paths: tuple[str, ...]
    budget_s: float


BUDGET_S = 270.0  # a device call leaves about 5 minutes
FULL = Settings(
    "cuda", ("vgg16_cifar", "resnet56"), (1, 64, 256), TimingConfig(200.0, 1.0, 10), 2, ("tests",), BUDGET_S
)
# The dry run prunes the small siblings (plain chain and residual net) to keep the fast test fast.
DRY = Settings(
    "cpu", ("quick_vgg", "resnet20"), (1, 2), TimingConfig(5.0, 0.02, 2), 1, ("tests/deploy/runners",), 120.0
)


class Budget:
    """Stops optional work before the --budget runs out; what did not fit is recorded, not dropped."""

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


def reason(e: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


@dataclass
class BenchResult:
    measurements: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    failed: list[dict[str, Any]]


def bench_models(s: Settings, budget: Budget) -> BenchResult:
    """Every (arch, precision, variant, batch); one that fails is recorded as failed and the rest still run."""
    from pruned_models import pruned_pair

    out = BenchResult([], [], [], [])
    measurements, comparisons, skipped = out.measurements, out.comparisons, out.skipped
    label = device_label(s.device)
    for arch in s.archs:
        try:
            pair = pruned_pair(arch, 0.5)
        except Exception as e:
            out.failed.append({"arch": arch, "status": "failed", "reason": reason(e)})
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
                    "precision": precision_label(s.device, precision),
                    "variant": variant,
                    "batch": batch,
                }
                x = np.random.default_rng(batch).standard_normal((batch, *shape), dtype=np.float32)
                try:
                    runners = {m: TorchRunner(models[m], s.device, precision, graphs) for m in models}
                    with runners["dense"], runners["pruned"]:
                        c = interleaved(runners, {"dense": x, "pruned": x}, s.timing, s.repeats)
                except Exception as e:  # out of memory, a CUDA or cuDNN error: this configuration only
                    out.failed.append({**key, "status": "failed", "reason": reason(e)})
                    print(f"  {arch} {precision} {variant} b{batch}: FAILED {reason(e)}", flush=True)
                    continue
                sources = {m: f"{arch} {m} ({pair.how})" for m in models}
                measurements += c.measurement_rows(key, sources)
                comparisons.append(c.comparison_row(key, pair.macs_ratio))
                r = c.ratio.median if c.ratio else float("nan")
                print(
                    f"  {arch} {key['precision']} {variant} b{batch}: pruned/dense {r:.3f} (MACs {pair.macs_ratio:.3f})",
                    flush=True,
                )
    return out


IO_SNIPPET = """
import json, sys, numpy as np
from cplitool.deploy.runners.cuda.choose import io_classes
cls = {c.name: c for c in io_classes()}[sys.argv[1]]
io = cls(); io.open()
try:
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32), dtype=np.float32)
    src, dst = io.buffer(x.shape, np.float32), io.buffer(x.shape, np.float32)
    runs = [io.run([(src, x)], lambda h: io.copy_device(dst, src), [dst]) for _ in range(20)]
    assert np.array_equal(dst.host, x), "round trip through the device changed the data"
    print(json.dumps({"h2d_ms": [t.h2d_ms for t in runs], "copy_ms": [t.compute_ms for t in runs], "d2h_ms": [t.d2h_ms for t in runs]}))
finally:
    io.close()
"""


def build_pycuda(s: Settings, budget: Budget) -> dict[str, Any]:
    """Build pycuda from a source archive beside this script, into .pycuda-build (offline)."""
    archives = sorted(HERE.glob("pycuda-*.tar.gz"))
    if not archives:
        return {
            "status": "skipped",
            "reason": f"no pycuda source archive (pycuda-*.tar.gz) beside {Path(__file__).name}",
        }
    archive = archives[-1]
    if s.device == "cpu":
        return {"status": "skipped", "reason": f"dry run on the CPU: would build {archive.name} (needs CUDA headers)"}
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--find-links", str(HERE)]
    cmd += ["--target", str(PYCUDA_TARGET), str(archive)]
    try:
        build = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, budget.left() - 60))
    except subprocess.TimeoutExpired:
        return {"status": "failed", "archive": archive.name, "reason": "build timed out"}
    if build.returncode != 0:
        tail = (build.stdout + build.stderr).strip().splitlines()[-15:]
        return {"status": "failed", "archive": archive.name, "reason": tail[-1] if tail else "", "tail": tail}
    return {"status": "ok", "archive": archive.name}


def check_io(s: Settings, name: str) -> dict[str, Any]:
    """Round-trip 64 CIFAR images through one CUDA I/O library in a child process (a crash stays there)."""
    if s.device == "cpu":
        return {"status": "skipped", "reason": "dry run on the CPU: no CUDA device"}
    path = [str(PYCUDA_TARGET)] if PYCUDA_TARGET.exists() else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")])}
    from cplitool.deploy.runners.cuda.choose import io_classes

    check = {c.name: c for c in io_classes()}[name].availability()
    if not check.ok and not (name == "pycuda" and PYCUDA_TARGET.exists()):  # or just built there
        return {"status": "skipped", "reason": check.reason}
    proc = subprocess.run(
        [sys.executable, "-c", IO_SNIPPET, name], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-15:]
        return {"status": "failed", "reason": tail[-1] if tail else f"exit {proc.returncode}", "tail": tail}
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"status": "ok", "median_ms": {k: float(np.median(v)) for k, v in times.items()}, "round_trip": "equal"}


def guarded(what: str, fn: Any, *args: Any) -> dict[str, Any]:
    """fn(*args), or {"status": "failed", "reason": ...} when it raises: one step never ends the check."""
    try:
        return fn(*args)
    except Exception as e:
        print(f"  {what}: FAILED {reason(e)}", flush=True)
        return {"status": "failed", "reason": reason(e)}


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
    lines += ["", f"pycuda build: {json.dumps(doc['pycuda_build'])}", ""]
    lines += [f"- CUDA I/O {name}: {json.dumps(r)}" for name, r in doc["io"].items()]
    lines += [f"- failed: {json.dumps(f)}" for f in doc["failed"]]
    lines += [f"- skipped: {json.dumps(s)}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GPU check: GPU tests, dense vs pruned CUDA latency, pycuda plumbing")
    ap.add_argument("--dry-run", action="store_true", help="same code path on the CPU with tiny settings")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and Markdown results")
    ap.add_argument("--bundle", type=Path, default=BUNDLE, help="folder of wheels from `make gpu-bundle`")
    ap.add_argument("--budget", type=float, help=f"seconds for the whole check (default {BUDGET_S:.0f}; dry run 120)")
    args = ap.parse_args(argv)
    s = DRY if args.dry_run else FULL
    if args.budget is not None:
        if args.budget <= 0:
            ap.error(f"--budget {args.budget}: expected a positive number of seconds")
        s = dataclasses.replace(s, budget_s=args.budget)
    bundled = use_bundle(args.bundle)
    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"gpu_check: torch {torch.__version__} sees no CUDA device; use --dry-run on a machine without a GPU",
            file=sys.stderr,
        )
        return 2
    start = time.monotonic()
    budget = Budget(s.budget_s)
    doc: dict[str, Any] = {
        "schema": "cplitool-gpu-check/2",
        "dry_run": args.dry_run,
        "command": " ".join([Path(sys.executable).name, *sys.argv])
        if argv is None
        else f"gpu_check.py {' '.join(argv)}",
        "settings": {"batches": s.batches, "timing": vars(s.timing), "repeats": s.repeats, "budget_s": s.budget_s},
        "bundle": [Path(w).name for w in bundled],
        "tests": {"status": "not run"},
        "measurements": [],
        "comparisons": [],
        "skipped": [],
        "failed": [],
        "pycuda_build": {"status": "not run"},
        "io": {},
    }
    try:
        doc["environment"] = guarded("environment", environment, torch.get_num_threads())
        print("gpu_check: GPU-marked tests ...", flush=True)
        doc["tests"] = guarded("tests", run_gpu_tests, s, budget)
        print(f"  {doc['tests']['status']}: {doc['tests'].get('summary', doc['tests'].get('reason', ''))}", flush=True)
        print("gpu_check: dense vs pruned with the torch CUDA runner ...", flush=True)
        bench = bench_models(s, budget)
        doc.update(measurements=bench.measurements, comparisons=bench.comparisons)
        doc.update(skipped=bench.skipped, failed=bench.failed)
        print("gpu_check: CUDA I/O libraries ...", flush=True)
        doc["pycuda_build"] = guarded("pycuda build", build_pycuda, s, budget)
        for name in IO_LIBRARIES:
            doc["io"][name] = guarded(f"io {name}", check_io, s, name)
            print(f"  {name}: {doc['io'][name]['status']} {doc['io'][name].get('reason', '')}", flush=True)
    except Exception as e:  # a step's own guard failed: still write what there is
        doc["failed"].append({"step": "gpu_check", "status": "failed", "reason": reason(e)})
    finally:
        doc["seconds"] = time.monotonic() - start
        failures = failed_steps(doc)
        doc["status"] = "failed" if failures else "ok"
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "gpu_check_dryrun" if args.dry_run else f"gpu_check_{safe_name(platform.node())}"
        (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
        (args.out / f"{stem}.md").write_text(guarded_markdown(doc))
        print(f"gpu_check: {doc['seconds']:.0f} s, {doc['status']} -> {args.out / stem}.json", flush=True)
    for f in failures:
        print(f"gpu_check: failed: {f}", file=sys.stderr)
    return 1 if failures else 0


def safe_name(host: str) -> str:
    """The host name with anything but letters, digits, '.', '_' and '-' replaced: a file name anywhere."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", host).strip("._") or "host"


def failed_steps(doc: dict[str, Any]) -> list[str]:
    """One line per failed step or configuration."""
    steps = {"tests": doc["tests"], "environment": doc.get("environment", {}), "pycuda build": doc["pycuda_build"]}
    steps.update({f"io {k}": v for k, v in doc["io"].items()})
    lines = [f"{k}: {v.get('reason', '')}" for k, v in steps.items() if v.get("status") == "failed"]
    return lines + [json.dumps(f) for f in doc["failed"]]


def guarded_markdown(doc: dict[str, Any]) -> str:
    try:
        return markdown(doc)
    except Exception as e:  # the JSON is the record; a Markdown problem must not hide it
        return f"# GPU check\n\nMarkdown summary failed ({reason(e)}); see the JSON.\n"


if __name__ == "__main__":
    sys.exit(main())
