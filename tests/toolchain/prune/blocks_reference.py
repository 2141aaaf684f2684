"""The scope = "blocks" reference: cpli/l1 on resnet20 and quick_vgg with seeded synthetic data.

fixtures/blocks_reference.json holds what the code before coupled groups gave (commit bbc5fa0, recorded on
another CPU); test_blocks_reference.py checks the code still gives it. Float results move with the CPU's
kernels and the thread count, so fixtures/blocks_reference_spread.json holds how far they move: the
largest deviation from the fixture over torch's kernel levels (ATEN_CPU_CAPABILITY) and 1 or 2 threads,
each run in a child process. `python -m tests.toolchain.prune.blocks_reference --spread` re-measures it;
`--record` re-records the values first (docs/development.md, "Recording a numeric fixture").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

import cplitool.toolchain.prune.pruner as pruner_mod
import cplitool.toolchain.prune.solver as solver_mod
from cplitool.toolchain.models import create_model
from cplitool.toolchain.prune.criteria import l1_keep
from cplitool.toolchain.prune.lasso import select_exact
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.recipe.sections import PruneSection
from tests.toolchain.prune.nets import randomise_bn

FIXTURE = Path(__file__).parent / "fixtures" / "blocks_reference.json"
SPREAD = Path(__file__).parent / "fixtures" / "blocks_reference_spread.json"
CASES = [("resnet20", (3, 32, 32), "cpli"), ("quick_vgg", (1, 8, 8), "cpli"), ("quick_vgg", (1, 8, 8), "l1")]
THREADS = (1, 2)
REPO = Path(__file__).resolve().parents[3]


def reference_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, 10)
    return randomise_bn(model)


def synthetic_batches(shape: tuple[int, ...], n: int = 3, batch: int = 40) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(batch, *shape, generator=gen), torch.randint(0, 10, (batch,), generator=gen)) for _ in range(n)
    ]


def run_case(name: str, shape: tuple[int, ...], method: str, **extra: Any) -> dict[str, Any]:
    model = reference_model(name)
    cfg = PruneSection(method=method, macs_keep=0.5, num_images=120, batch_size=40, **extra)
    plan = make_plan(model, shape, cfg)
    result = prune_model(model, plan, cfg, synthetic_batches(shape), torch.device("cpu"), seed=0)
    weights = {n: p.detach().double() for n, p in result.model.named_parameters() if n.endswith("weight")}
    return {
        "keep": [s.keep for s in plan.stages],
        "kept": [s.kept_channels for s in result.stages],
        "weight_sums": {n: float(w.sum()) for n, w in weights.items()},
        "weight_sq": {n: float((w * w).sum()) for n, w in weights.items()},
    }


@dataclass
class Selections:
    """Every channel selection's inputs and outcome during a run: CPLI's LASSO (Q, q, keep, kept) and the
    L1 criterion (filter norms, kept, elements per filter)."""

    lasso: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = field(default_factory=list)
    l1: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)


@contextmanager
def recorded_selections() -> Iterator[Selections]:
    spy = Selections()

    def lasso(Q: np.ndarray, q: np.ndarray, keep: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        beta, kept = select_exact(Q, q, keep, **kw)
        spy.lasso.append((Q.copy(), q.copy(), keep, kept))
        return beta, kept

    def l1(producer: Any, keep: int) -> np.ndarray:
        w = producer.weight.detach()
        kept = l1_keep(producer, keep)
        spy.l1.append((w.abs().reshape(w.shape[0], -1).double().sum(1).numpy(), kept, w[0].numel()))
        return kept

    with mock.patch.object(solver_mod, "select_exact", lasso), mock.patch.object(pruner_mod, "l1_keep", l1):
        yield spy


def compute() -> dict[str, Any]:
    return {f"{n}/{m}": run_case(n, s, m, ridge_search=False) for n, s, m in CASES}


def compute_with_inputs() -> dict[str, Any]:
    """compute(), each case with its LASSO inputs [[Q, q], ...] under "lasso_inputs"."""
    out = {}
    for n, s, m in CASES:
        with recorded_selections() as spy:
            out[f"{n}/{m}"] = run_case(n, s, m, ridge_search=False)
        out[f"{n}/{m}"]["lasso_inputs"] = [[Q.tolist(), q.tolist()] for Q, q, _, _ in spy.lasso]
    return out


def input_deviation(got: list[Any], want: list[Any]) -> float:
    """The largest change of the LASSO's Q or q over a case's selections, relative to its largest entry."""
    out = 0.0
    for pair_got, pair_want in zip(got, want, strict=True):
        for a, b in zip(pair_got, pair_want, strict=True):
            a, b = np.asarray(a), np.asarray(b)
            out = max(out, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)))
    return out


def deviation(got: dict[str, Any], want: dict[str, Any], key: str) -> float:
    """The largest deviation of one case's `key` over its weight tensors, scaled so that a relative change
    d of every weight gives about d whatever the tensor: weight sums by ||w||_2 (a sum of mixed signs can
    be near zero, its rounding error is not), sums of squares by themselves."""
    out = 0.0
    for n, v in want[key].items():
        scale = math.sqrt(want["weight_sq"][n]) if key == "weight_sums" else v
        out = max(out, abs(got[key][n] - v) / max(scale, 1e-300))
    return out


def variants() -> list[tuple[str, int]]:
    """(ATEN_CPU_CAPABILITY, threads): the scalar kernels, AVX2 where the CPU has it, and the CPU's own."""
    own = torch.backends.cpu.get_cpu_capability().lower()
    levels = ["default", "avx2", own] if own.startswith("avx") else ["default", own]
    return [(c, t) for c in dict.fromkeys(levels) for t in THREADS]


def compute_in_child(capability: str, threads: int) -> dict[str, Any]:
    """compute() in a fresh interpreter: the kernel level is fixed when torch loads."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "values.json"
        code = (
            "import json, sys, torch; torch.set_num_threads(int(sys.argv[1])); "
            "from tests.toolchain.prune.blocks_reference import compute_with_inputs as c; "
            "open(sys.argv[2], 'w').write(json.dumps(c()))"
        )
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", code, str(threads), str(out)], env=env, check=True, cwd=REPO)
        return json.loads(out.read_text())


def spread(want: dict[str, Any]) -> dict[str, Any]:
    """Per case: the largest deviation from `want` over the variants (weight_sums, weight_sq), and of the
    LASSO inputs from the first variant's (lasso_inputs)."""
    runs = {f"{c}/{t}": compute_in_child(c, t) for c, t in variants()}
    first = next(iter(runs.values()))
    cases: dict[str, Any] = {}
    for case in want:
        cases[case] = {
            "selections_equal": all(
                r[case]["keep"] == want[case]["keep"] and r[case]["kept"] == want[case]["kept"] for r in runs.values()
            ),
            **{k: max(deviation(r[case], want[case], k) for r in runs.values()) for k in ("weight_sums", "weight_sq")},
            "lasso_inputs": max(
                input_deviation(r[case]["lasso_inputs"], first[case]["lasso_inputs"]) for r in runs.values()
            ),
        }
    return {
        "variants": list(runs),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "cases": cases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", action="store_true", help="re-record the values (then measure their spread)")
    parser.add_argument("--spread", action="store_true", help="measure how far kernels and threads move them")
    args = parser.parse_args()
    if args.record:
        values = compute_in_child("default", 1)
        FIXTURE.write_text(
            json.dumps({c: {k: v for k, v in d.items() if k != "lasso_inputs"} for c, d in values.items()}, indent=1)
        )
    if args.record or args.spread:
        SPREAD.write_text(json.dumps(spread(json.loads(FIXTURE.read_text())), indent=1) + "\n")


if __name__ == "__main__":
    main()
