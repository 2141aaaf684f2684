"""FP32, FP16 and INT8 (Q/DQ) ONNX files of dense and pruned models: accuracy and ONNX Runtime CPU latency.

Each case runs cplitool's own stages in a scratch folder: dense training, the prune stage (CPLI to half the
MACs), fine-tuning, then the export stage, which checks every file against PyTorch and measures its top-1
with ONNX Runtime on real validation images. Latency: every file of the case in one interleaved loop
(cplitool.deploy.bench.compare.interleaved), fixed ONNX Runtime threads; the medians of per-round medians and the
median per-round ratio to dense FP32 are reported. Cases:

- quickstart: recipes/quickstart.toml (digits, quick_vgg), whole validation split (360 images).
- cifar10: resnet20 on CIFAR-10 JPEG, trained briefly on a training subset (CPU budget), evaluated on a
  seeded subset of the test split: the accuracies are those of a short run, not of a converged ResNet-20.

    .venv/bin/python benchmarks/export_precisions.py --case quickstart [--threads 1] [--rounds 5] [--batch 1 --batch 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onnx_timing import round_medians
from results_io import REPO, record

from cplitool.deploy.export.stage import export_stage
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir

CIFAR = REPO.parent / "shared" / "data" / "cifar10-jpeg"
CIFAR_RECIPE = f"""
[run]
name = "cifar10-resnet20"
[model]
name = "resnet20"
[data]
name = "imagefolder"
root = "{CIFAR}"
mean = [0.491, 0.482, 0.447]
std = [0.247, 0.243, 0.262]
train_subset = 10000
val_subset = 2000
batch_size = 128
eval_batch_size = 500
workers = 0
[train]
epochs = 4
lr = 0.1
schedule = "onecycle"
[prune]
num_images = 1000
[finetune]
epochs = 2
lr = 0.01
"""
PRECISIONS = ["fp32", "fp16", "int8"]


def case_recipe(case: str, folder: Path, threads: int) -> Recipe:
    over: dict[str, Any] = {"run": {"threads": threads, "dir": str(folder / "run")}, "data": {"workers": 0}}
    if case == "quickstart":
        return load_recipe(REPO / "recipes" / "quickstart.toml", over)
    if not CIFAR.is_dir():
        raise SystemExit(f"CIFAR-10 JPEG folder not found at {CIFAR}")
    path = folder / "cifar10.toml"
    path.write_text(CIFAR_RECIPE)
    return load_recipe(path, over)


def run_stages(recipe: Recipe) -> tuple[RunDir, dict[str, Any], str]:
    """train -> prune -> finetune -> export with cplitool's stages; says how the pruned model was made."""
    from cplitool.toolchain.train.stage import train_dense

    train_dense(recipe)
    run = RunDir.for_recipe(recipe)
    try:
        from cplitool.toolchain.prune.stage import prune_stage
    except ImportError as e:
        pruned = f"not available: the prune stage could not be imported ({e}); dense only"
    else:
        prune_stage(recipe)
        pruned = f"cplitool prune (method {recipe.prune.method}, macs_keep {recipe.prune.macs_keep})"
        try:
            from cplitool.toolchain.finetune.stage import finetune_stage
        except ImportError:
            pruned += ", not fine-tuned (finetune stage unavailable)"
        else:
            finetune_stage(recipe)
            pruned += f", fine-tuned {recipe.finetune.epochs} epochs (kd_weight {recipe.finetune.kd_weight})"
    return run, export_stage(recipe, run, precisions=PRECISIONS), pruned


def latency(
    run: RunDir, files: list[dict[str, Any]], batch: int, threads: int, rounds: int, shape: tuple[int, ...]
) -> dict[str, dict[str, float]]:
    names = [f"{f['model']}.{f['precision']}" for f in files]
    paths = {n: run.path / f["path"] for n, f in zip(names, files, strict=True)}
    medians_of = round_medians(paths, batch, threads, rounds, shape, seconds_per_round=0.5)
    base = medians_of["dense.fp32"]
    return {
        n: {
            "median_ms": statistics.median(m),
            "ratio_to_dense_fp32": statistics.median(a / b for a, b in zip(m, base, strict=True)),
            "rounds": len(m),
        }
        for n, m in medians_of.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["quickstart", "cifar10"], required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--batch", type=int, action="append", help="batch sizes to time (default: 1 and 32)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    batches = args.batch or [1, 32]
    load_before = [round(v, 2) for v in os.getloadavg()]
    folder = args.workdir or Path(tempfile.mkdtemp(prefix=f"export-{args.case}-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    recipe = case_recipe(args.case, folder, args.threads)
    run, entry, pruned_how = run_stages(recipe)
    files = [f for f in entry["files"] if f["status"] == "done"]
    shape = tuple(int(d) for d in recipe_shape(run))
    timings = {b: latency(run, files, b, args.threads, args.rounds, shape) for b in batches}
    rows = []
    table = [
        "| model | precision | top-1 % | images | parity (max abs err, top-1 agreement) | "
        + " | ".join(f"b{b} median ms | b{b} / dense fp32" for b in batches)
        + " |",
        "|---|---|---:|---:|---|" + "---:|---:|" * len(batches),
    ]
    for f in files:
        name = f"{f['model']}.{f['precision']}"
        t = {b: timings[b][name] for b in batches}
        rows.append({**{k: f[k] for k in ("model", "precision", "accuracy", "check")}, "latency": t})
        parity = f"{f['parity']['abs_err']['max']:.2e}, {f['parity']['top1_agreement']:.1f}%"
        cells = " | ".join(f"{t[b]['median_ms']:.3f} | {t[b]['ratio_to_dense_fp32']:.3f}" for b in batches)
        table.append(
            f"| {f['model']} | {f['precision']} | {f['accuracy']['top1']:.2f} | {f['accuracy']['images']} | "
            f"{parity} | {cells} |"
        )
    table += [
        "",
        f"Model: {recipe.model.name} on {recipe.data.name}; pruned model: {pruned_how}.  ",
        f"Accuracy: ONNX Runtime CPU on the validation images counted above (data.val_subset = "
        f"{recipe.data.val_subset or 'all'}); INT8 calibrated on {recipe.export.calib_images} training images.  ",
        f"Latency: ONNX Runtime CPU, {args.threads} intra-op thread(s), {args.rounds} interleaved rounds, "
        f"random inputs; load average before {load_before}.",
    ]
    print("\n".join(table))
    record(
        f"export_precisions_{args.case}",
        f"Export precisions: accuracy and ONNX Runtime CPU latency ({args.case})",
        table,
        {"case": args.case, "pruned": pruned_how, "load_before": load_before, "batches": batches, "rows": rows},
        args.threads,
    )


def recipe_shape(run: RunDir) -> list[int]:
    from cplitool.deploy.export.checks import load_onnx

    dims = load_onnx(run.path / "onnx" / "dense.fp32.onnx").graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims[1:]]


if __name__ == "__main__":
    main()
