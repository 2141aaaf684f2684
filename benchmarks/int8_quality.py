"""Is INT8 worth shipping? FP32 against INT8 (Q/DQ) top-1 on the full test sets, per calibration setting, and
ONNX Runtime CPU latency INT8/FP32 with its spread.

For each case and model (dense and pruned) the FP32 ONNX file comes from cplitool's export stage; every INT8
variant (calibration method x first conv and classifier kept in FP32 or not) is made from it by the export
stage's own quantize_int8 on the export stage's seeded calibration sample, scored on the whole test split
and compared with FP32 on the same images (the export gate's paired drop and 95% interval). Latency: FP32
and every INT8 variant of one model timed interleaved (cplitool.deploy.bench.compare.interleaved), random inputs,
fixed ONNX Runtime threads; each INT8/FP32 ratio is the median of the per-round ratios with their
min-max. Cases:

- quickstart: recipes/quickstart.toml (quick_vgg on digits), dense, pruned and fine-tuned by `cplitool run`
  in the work folder; 360 test digits.
- resnet20, mobilenet_v2: the user models of benchmarks/user_models/ with their trained checkpoints; pruned
  by `cplitool prune` (cpli to 50% of MACs, 2,000 images; scope blocks for ResNet-20, all for MobileNetV2),
  not fine-tuned (a CIFAR-10 epoch costs too much on the shared CPU); 10,000 CIFAR-10 test images.

    .venv/bin/python benchmarks/int8_quality.py --case quickstart --case resnet20 --case mobilenet_v2 \\
        [--variant minmax --variant entropy+ends ...] [--threads 1] [--rounds 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onnx_timing import round_medians
from results_io import REPO, record

from cplitool.deploy.export.int8_gate import paired_drop
from cplitool.deploy.export.measure import onnx_correct
from cplitool.deploy.export.quantize import CALIBRATION, quantize_int8
from cplitool.deploy.export.stage import Exporter, export_stage
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir

GOAL = 0.5  # points: INT8 within this of FP32 everywhere
VARIANTS = [f"{m}{e}" for m in CALIBRATION for e in ("", "+ends")]
USER = REPO / "benchmarks" / "user_models"
SCOPE = {"resnet20": "blocks", "mobilenet_v2": "all"}


def cplitool(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "cplitool"), *args], check=True)


def case_run(case: str, folder: Path, threads: int) -> tuple[Recipe, RunDir, str]:
    """The case's recipe and a run holding its dense and pruned models; says how the pruned one was made."""
    run_dir = folder / case
    sets = {"run.dir": f'"{run_dir}"', "run.threads": str(threads), "data.workers": "0"}
    if case == "quickstart":
        path = REPO / "recipes" / "quickstart.toml"
        flags = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
        if not (run_dir / "finetuned.pt").is_file():
            cplitool("run", str(path), *flags)
        how = "cplitool run recipes/quickstart.toml (CPLI to 50% of MACs, fine-tuned 8 epochs)"
    else:
        path = USER / f"{case}_cifar10.toml"
        sets |= {
            "prune.method": '"cpli"',
            "prune.scope": f'"{SCOPE[case]}"',
            "prune.macs_keep": "0.5",
            "prune.round_to": "1",
            "prune.num_images": "2000",
        }
        flags = [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
        if not (run_dir / "pruned.pt").is_file():
            cplitool("prune", str(path), *flags)
        how = f"cplitool prune (cpli, scope {SCOPE[case]}, 50% of MACs, 2,000 images), not fine-tuned"
    overrides: dict[str, Any] = {"run": {"dir": str(run_dir), "threads": threads}, "data": {"workers": 0}}
    return load_recipe(path, overrides), RunDir(run_dir), how


def variant_options(name: str) -> tuple[str, bool]:
    method, _, ends = name.partition("+")
    return method, ends == "ends"


def latency(paths: dict[str, Path], batch: int, threads: int, rounds: int, shape: tuple[int, ...]) -> dict[str, Any]:
    """Per INT8 variant: median of per-round INT8/FP32 ratios with their min-max; per file the median ms."""
    medians_of = round_medians(paths, batch, threads, rounds, shape, seconds_per_round=0.4)
    base = medians_of["fp32"]
    out: dict[str, Any] = {}
    for name, medians in medians_of.items():
        ratios = sorted(a / b for a, b in zip(medians, base, strict=True))
        out[name] = {
            "median_ms": float(np.median(medians)),
            "ratio": float(np.median(ratios)),
            "ratio_min": ratios[0],
            "ratio_max": ratios[-1],
            "rounds": len(ratios),
        }
    return out


def measure_model(
    exporter: Exporter, fp32: Path, variants: list[str], folder: Path, threads: int, rounds: int, batches: list[int]
) -> dict[str, Any]:
    loader = exporter.loader(exporter.eval_split)
    base = onnx_correct(fp32, loader, threads, f"fp32 {fp32.name}")
    rows: dict[str, Any] = {"fp32": {"top1": 100.0 * float(base.mean()), "images": len(base)}}
    paths = {"fp32": fp32}
    for name in variants:
        method, ends = variant_options(name)
        path = folder / f"{fp32.stem.split('.')[0]}.{name}.int8.onnx"
        made = quantize_int8(fp32, path, exporter.calibration(), method, ends)
        correct = onnx_correct(path, loader, threads, f"{name} {path.name}")
        drop = paired_drop(base, correct, GOAL)
        rows[name] = {"top1": 100.0 * float(correct.mean()), "drop": drop.to_dict(), **made}
        paths[name] = path
        print(f"  {path.name}: top-1 {rows[name]['top1']:.2f}%, {drop.summary()}", flush=True)
    shape = exporter.sample_shape
    timings = {b: latency(paths, b, threads, rounds, shape) for b in batches}
    for name in paths:
        rows[name]["latency"] = {b: timings[b][name] for b in batches}
    return rows


def table(results: dict[str, Any], variants: list[str], batches: list[int]) -> list[str]:
    head = "| case | model | FP32 top-1 % | INT8 variant | INT8 top-1 % | drop (95% CI), points | within 0.5 |"
    head += "".join(f" b{b} INT8/FP32 (min-max) |" for b in batches)
    lines = [head, "|---|---|---:|---|---:|---|---|" + "---:|" * len(batches)]
    for case, models in results.items():
        for model, rows in models.items():
            fp32 = rows["fp32"]
            for name in variants:
                r, d = rows[name], rows[name]["drop"]
                lat = "".join(
                    f" {r['latency'][b]['ratio']:.2f} ({r['latency'][b]['ratio_min']:.2f}-{r['latency'][b]['ratio_max']:.2f}) |"
                    for b in batches
                )
                ok = "yes" if d["points"] <= GOAL else "no"
                lines.append(
                    f"| {case} | {model} | {fp32['top1']:.2f} | {name} | {r['top1']:.2f} | "
                    f"{d['points']:+.2f} ({d['low']:+.2f} to {d['high']:+.2f}) | {ok} |{lat}"
                )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=["quickstart", *SCOPE], help="repeatable (default: all)")
    ap.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable (default: all six)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for accuracy and latency")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--batch", type=int, action="append", help="batch sizes to time (default: 1 and 64)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    cases, variants, batches = args.case or ["quickstart", *SCOPE], args.variant or VARIANTS, args.batch or [1, 64]
    load_before = [round(v, 2) for v in os.getloadavg()]
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="int8-quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    how: dict[str, str] = {}
    samples: dict[str, Any] = {}
    for case in cases:  # the table is rewritten after each case, so a long run leaves what it measured
        recipe, run, how[case] = case_run(case, folder, args.threads)
        entry = export_stage(recipe, run, precisions=["fp32"])
        exporter = Exporter(recipe, run, trt=False)
        results[case] = {}
        for f in entry["files"]:
            print(f"{case} {f['model']}", flush=True)
            results[case][f["model"]] = measure_model(
                exporter, run.path / f["path"], variants, run.path / "onnx", args.threads, args.rounds, batches
            )
        samples[case] = exporter.samples()
        write(results, how, samples, variants, batches, args, load_before)


def write(
    results: dict[str, Any],
    how: dict[str, str],
    samples: dict[str, Any],
    variants: list[str],
    batches: list[int],
    args: argparse.Namespace,
    load_before: list[float],
) -> None:
    cases = list(results)
    lines = table(results, variants, batches)
    lines += [
        "",
        *(
            f"- {case}: pruned model: {how[case]}; accuracy on {samples[case]['accuracy']['images']} test images "
            f"(all), INT8 calibrated on {samples[case]['calibration']['images']} training images (seed "
            f"{samples[case]['calibration']['seed']})."
            for case in cases
        ),
        "- Variants: onnxruntime calibration method (minmax, entropy, percentile 99.999); +ends keeps the first "
        "conv and the classifier in FP32. Symmetric INT8, per-channel weights, biases in FP32 (TensorRT's Q/DQ form).",
        f"- Drop: FP32 minus INT8 top-1 on the same images; 95% CI: Agresti-Min paired interval. Goal: within "
        f"{GOAL} points.",
        f"- Latency: ONNX Runtime CPU, {args.threads} intra-op thread(s), {args.rounds} interleaved rounds of FP32 "
        f"and every variant, random inputs; load average before {load_before}, after {[round(v, 2) for v in os.getloadavg()]}.",
    ]
    print("\n".join(lines))
    everything = cases == ["quickstart", *SCOPE]
    record(
        "int8_quality" if everything else "_".join(["int8_quality", *cases]),  # a partial run keeps the full table
        "INT8 against FP32: top-1 on the full test sets and ONNX Runtime CPU latency",
        lines,
        {"goal_points": GOAL, "load_before": load_before, "pruned": how, "samples": samples, "results": results},
        args.threads,
    )


if __name__ == "__main__":
    main()
