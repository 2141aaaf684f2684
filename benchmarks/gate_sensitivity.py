"""Is the latency gate stable and sensitive? Counts false alarms and misses of `cplitool gate` on this machine.

Each run does two things, in turn:
- the gate itself (`cplitool gate`, a subprocess, exactly what `make gate` runs) on the good pair: it must exit 0;
  an exit 1 is a false alarm;
- the gate's measurement and comparison (with the same load-aware retry) on a truly slower pruned model, whose
  bench file then goes through `cplitool regress`: it must exit 1; an exit 0 is a miss.

The slower model is the gate's pruned model with every pruned layer padded back towards its dense width by
zero channels, in multiples of 8 as cplitool prunes (odd widths would hit slower kernels and overstate the
slowdown), until it has --extra (15%) more MACs. Zero filters with zero BatchNorm scale and shift output
zeros, and the next layer's weights on them are zero, so its outputs, hence its accuracy, are exactly the
pruned model's: only its latency differs.

    .venv/bin/python benchmarks/gate_sensitivity.py [--runs 5] [--extra 0.15] [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_io import REPO, RESULTS, record

from cplitool.deploy.gate.measure import measure_pair
from cplitool.deploy.gate.pair import Pair, PairSpec, export_pair, make_models, prepare_pair
from cplitool.deploy.gate.run import GATE, run_gate
from cplitool.deploy.regress import load_doc
from cplitool.toolchain.counting import count_model
from cplitool.toolchain.io import write_json
from cplitool.toolchain.models.vgg import VGG

CLI = [sys.executable, "-m", "cplitool.cli.app"]
ROUND_TO = 8  # cplitool's default prune.round_to
NAME = "gate_sensitivity"


def conv_widths(model: VGG) -> list[int | str]:
    """The VGG config of `model`: conv widths, 'M' for the max-pools."""
    return [
        m.out_channels if isinstance(m, nn.Conv2d) else "M"
        for m in model.features
        if isinstance(m, nn.Conv2d | nn.MaxPool2d)
    ]


def zero_padded(model: VGG, widths: list[int | str]) -> VGG:
    """A copy of `model` with each conv widened to `widths` by zero channels: the same outputs, more MACs."""
    wide = VGG(widths, model.classifier.out_features, model.features[0].in_channels).eval()
    old = list(model.features)
    with torch.no_grad():
        for i, m in enumerate(wide.features):
            if isinstance(m, nn.Conv2d):
                src = old[i]
                assert isinstance(src, nn.Conv2d)
                m.weight.zero_()
                m.weight[: src.out_channels, : src.in_channels] = src.weight
            elif isinstance(m, nn.BatchNorm2d):
                src_bn = old[i]
                assert isinstance(src_bn, nn.BatchNorm2d)
                n = src_bn.num_features
                for name in ("weight", "bias", "running_mean"):
                    getattr(m, name).zero_()
                    getattr(m, name)[:n] = getattr(src_bn, name)
                m.running_var.fill_(1.0)
                m.running_var[:n] = src_bn.running_var
        wide.classifier.weight.zero_()
        wide.classifier.weight[:, : model.classifier.in_features] = model.classifier.weight
        wide.classifier.bias.copy_(model.classifier.bias)
    return wide


def slower(pruned: VGG, dense: VGG, extra: float, shape: tuple[int, ...]) -> VGG:
    """`pruned` padded back towards `dense` by one fraction of each layer's removed channels (in steps of
    ROUND_TO), bisected until the MACs are at least (1 + extra) times the pruned model's."""
    target = (1 + extra) * count_model(pruned, shape).macs
    low, high = conv_widths(pruned), conv_widths(dense)

    def widths(f: float) -> list[int | str]:  # multiples of ROUND_TO, as cplitool prunes: no odd-width kernels
        return [
            w if w == "M" else int(w) + ROUND_TO * round(f * (int(d) - int(w)) / ROUND_TO)
            for w, d in zip(low, high, strict=True)
        ]

    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if count_model(zero_padded(pruned, widths(mid)), shape).macs >= target:
            hi = mid
        else:
            lo = mid
    return zero_padded(pruned, widths(hi))


def slow_pair(spec: PairSpec, extra: float, folder: Path) -> Pair:
    """The gate's dense model with the zero-padded pruned model, exported to `folder`."""
    models, shape = make_models(spec)
    dense, pruned = models["dense"], models["pruned"]
    assert isinstance(dense, VGG) and isinstance(pruned, VGG)
    models["pruned"] = slower(pruned, dense, extra, shape)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.allclose(pruned(x), models["pruned"](x), atol=1e-5), "zero padding changed the outputs"
    folder.mkdir(parents=True, exist_ok=True)
    return Pair(folder, spec, export_pair(models, shape, folder), shape)


def run_cli(*args: str) -> tuple[int, float, str, str]:
    """(exit code, wall seconds, stdout, the end of stderr)."""
    start = time.perf_counter()
    p = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True)
    return p.returncode, time.perf_counter() - start, p.stdout, p.stderr[-2000:]


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace, good: Pair, slow: Pair, timing: Any) -> Path:
    """Record the runs so far (after every run: an interrupted benchmark keeps what it measured)."""
    false_alarms = sum(r["good_exit"] != 0 for r in rows)
    misses = sum(r["slow_exit"] != 1 for r in rows)
    slow_macs = slow.macs["pruned"] / good.macs["pruned"] - 1

    def num(v: float | None) -> str:
        return "error" if v is None else f"{v:.4f}"

    table = [
        "| run | load before | gate exit (good) | good ratio | gate s | regress exit (slower) | slower ratio | limit | retried (good/slower) | load after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *[
            f"| {i + 1} | {r['load_before']:.2f} | {r['good_exit']} | {num(r['good_ratio'])} | {r['good_seconds']:.0f} | "
            f"{r['slow_exit']} | {r['slow_ratio']:.4f} | {r['limit']:.4f} | {r['good_retried']}/{r['slow_retried']} | "
            f"{r['load_after']:.2f} |"
            for i, r in enumerate(rows)
        ],
        "",
        f"Good pair: {good.spec.arch}, MACs {good.macs['dense'] / 1e6:.1f} M -> {good.macs['pruned'] / 1e6:.1f} M. "
        f"Slower pruned model: zero-padded to {100 * slow_macs:+.1f}% MACs (outputs identical).  ",
        f"Gate: batch {timing.batch}, {timing.threads} thread, {timing.repeats} rounds, {timing.duration_s} s per model; "
        f"baseline {args.baseline.relative_to(REPO)}.  ",
        f"**False alarms: {false_alarms} of {len(rows)}; misses: {misses} of {len(rows)}** ({len(rows)} of {args.runs} runs done). "
        f"Longest gate: {max(r['good_seconds'] for r in rows):.0f} s.",
    ]
    path = record(
        NAME,
        "Latency gate: false alarms on the good pair, misses on a 15%-MACs-slower pruned model",
        table,
        {
            "args": {k: str(v) for k, v in vars(args).items()},
            "slow_extra_macs": slow_macs,
            "false_alarms": false_alarms,
            "misses": misses,
            "runs": rows,
        },
        timing.threads,
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--extra", type=float, default=0.15, help="extra MACs of the slower pruned model")
    ap.add_argument("--baseline", type=Path, default=REPO / "deploy/baselines/cpu.json")
    ap.add_argument("--append", action="store_true", help="continue the recorded runs up to --runs in all")
    args = ap.parse_args()

    os.chdir(REPO)
    good, _ = prepare_pair(GATE.spec, GATE.pairs)
    slow = slow_pair(GATE.spec, args.extra, GATE.root / "slow")
    slow_bench = GATE.root / "slow_bench.json"
    baseline = load_doc(args.baseline)
    timing = GATE.timing
    rows: list[dict[str, Any]] = json.loads((RESULTS / f"{NAME}.json").read_text())["runs"] if args.append else []
    for _ in range(args.runs - len(rows)):
        load_before = os.getloadavg()[0]
        code, seconds, stdout, stderr = run_cli("gate", "--baseline", str(args.baseline), "--json")
        gate_doc = json.loads(stdout[stdout.index("{") :]) if code in (0, 1) and "{" in stdout else {}
        outcome = run_gate(lambda: measure_pair(slow, timing), baseline, None, (str(slow_bench), str(args.baseline)))
        write_json(slow_bench, outcome.doc)
        slow_code, *_ = run_cli("regress", str(slow_bench), "--baseline", str(args.baseline))
        row = {
            "load_before": load_before,
            "good_exit": code,
            "good_seconds": seconds,
            "good_ratio": gate_doc.get("rows", [{}])[0].get("current"),
            "good_retried": bool(gate_doc.get("notes")),
            "good_stderr": stderr if code else "",
            "slow_exit": slow_code,
            "slow_ratio": outcome.report.rows[0].current,
            "slow_retried": bool(outcome.notes),
            "limit": outcome.report.rows[0].limit,
            "load_after": os.getloadavg()[0],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        path = write_results(rows, args, good, slow, timing)
    print(path.with_suffix(".md").read_text())
    print(f"-> {path}")


if __name__ == "__main__":
    main()
