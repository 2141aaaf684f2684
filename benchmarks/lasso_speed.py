"""CPLI's exact-count LASSO selection against scikit-learn's Lasso on the explicit design: time, objective, support.

Random problems like channel selection's: a design D (rows = 2c) whose columns have mixed scales and share a
component (correlated, like post-ReLU features), a half-sparse truth. Our selection sees only Q = D^T D / N and
q = D^T y / N (what the pruner hands it) and keeps c/2 channels; the reference is scikit-learn's coordinate
descent on D itself, run to a tight tolerance at the lam our search stopped at, so both solve the same problem.
The plain Python loop this replaced (git history: toolchain/prune/lasso.py before the numba rewrite) is timed
once per size with `--python-loop` (minutes at c = 2048). Goal: c = 2048 in under 1 s on 2 cores.

    .venv/bin/python benchmarks/lasso_speed.py [--sizes 64 256 1024 2048] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lasso_real_grams import lasso_at
from results_io import record  # also puts the repository on sys.path
from sklearn.linear_model import Lasso

from cplitool.toolchain.prune.lasso import select_exact

GOAL_S = 1.0


def problem(c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = 2 * c
    D = rng.standard_normal((rows, c)) * rng.uniform(0.2, 3.0, c) + 0.3 * rng.standard_normal((rows, 1))
    y = D @ (rng.standard_normal(c) * (rng.uniform(size=c) < 0.5)) + 0.5 * rng.standard_normal(rows)
    return D, y


def objective(Q: np.ndarray, q: np.ndarray, lam: float, beta: np.ndarray) -> float:
    return float(0.5 * beta @ Q @ beta - q @ beta + lam * np.abs(beta).sum())


def stop_lam(Q: np.ndarray, q: np.ndarray, beta: np.ndarray) -> float:
    """The lam beta solves: on the support |q - Q beta| = lam (KKT)."""
    support = np.flatnonzero(beta)
    return float(np.median(np.abs(q - Q @ beta)[support]))


def measure(c: int, repeats: int) -> dict[str, float | int | bool]:
    D, y = problem(c, seed=c)
    rows = len(y)
    Q, q = D.T @ D / rows, D.T @ y / rows
    keep = c // 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        beta, kept = select_exact(Q, q, keep)
        times.append(time.perf_counter() - start)
    lam = stop_lam(Q, q, beta)
    start = time.perf_counter()
    ref = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=100_000).fit(D, y).coef_
    ref_s = time.perf_counter() - start
    ours, theirs = set(kept.tolist()), set(np.flatnonzero(ref).tolist())
    return {
        "c": c,
        "keep": keep,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "sklearn_s": ref_s,
        "exact_count": int(np.count_nonzero(beta)) == keep,
        "objective": objective(Q, q, lam, beta),
        "sklearn_objective": objective(Q, q, lam, ref),
        "support_differs": len(ours ^ theirs),
        "sklearn_nonzeros": len(theirs),
    }


def python_loop_seconds(c: int) -> float:
    """The replaced pure-Python selection on the same problem, one run (read from git, so it never ships)."""
    with tempfile.TemporaryDirectory() as folder:
        old = lasso_at("216c1f9", Path(folder))
        D, y = problem(c, seed=c)
        start = time.perf_counter()
        old.select_exact(D.T @ D / len(y), D.T @ y / len(y), c // 2)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 2048])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python-loop", action="store_true", help="also time the replaced pure-Python loop once")
    ap.add_argument("--name", default="lasso_speed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    select_exact(np.eye(3), np.ones(3), 1)  # numba compiles (or loads its cache) on the first call
    compile_s = time.perf_counter() - start
    load_before = os.getloadavg()
    rows = []
    for c in args.sizes:
        row = measure(c, args.repeats)
        if args.python_loop:
            row["python_loop_s"] = python_loop_seconds(c)
        rows.append(row)
        print(row, flush=True)
    load_after = os.getloadavg()
    big = [r for r in rows if r["c"] == 2048]
    table = [
        f"Exact-count selection (keep c/2) on Q, q vs scikit-learn's Lasso on the explicit design D (2c rows) at the "
        f"same lam; median of {args.repeats} runs (min-max). First call (numba compile or cache load): "
        f"{compile_s:.2f} s. Load average before {load_before[0]:.2f}, after {load_after[0]:.2f}.",
        "",
        "| c | keep | ours (s) | min-max | sklearn on D, one lam (s) | python loop (s) | exact count | objective ours - sklearn "
        "| support differs |",
        "|---:|---:|---:|---:|---:|---:|:---:|---:|---:|",
        *[
            f"| {r['c']} | {r['keep']} | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | {r['sklearn_s']:.2f} "
            f"| {r.get('python_loop_s', float('nan')):.1f} | {'yes' if r['exact_count'] else 'no'} "
            f"| {r['objective'] - r['sklearn_objective']:.2e} | {r['support_differs']} |"
            for r in rows
        ],
        "",
        *(
            [
                f"Goal: c = 2048 under {GOAL_S:.0f} s. Measured: {big[0]['median_s']:.2f} s "
                f"({'met' if big[0]['median_s'] < GOAL_S else 'NOT met'}) under the load above."
            ]
            if big
            else []
        ),
    ]
    print("\n".join(table))
    record(args.name, "LASSO selection speed", table, {"args": vars(args), "compile_s": compile_s, "rows": rows}, 1)


if __name__ == "__main__":
    main()
