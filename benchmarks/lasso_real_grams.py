"""The LASSO selection on a real prune's Grams: this checkout's select_exact against the one at a git revision.

Runs one row of prune_speed.py (cplitool.prune, scope "all"), records every (Q, q, keep) the pruner hands the
LASSO, then solves each again with both versions in one process, interleaved: seconds, whether the kept channels
are the same, and where they differ, how good each kept set is. Goodness is the least-squares objective of the
kept channels, min_b 1/2 b^T Q_SS b - q_S^T b (what the refit can reach on them), relative to the revision's;
a random kept set of the same size is scored too, for scale.

    .venv/bin/python benchmarks/lasso_real_grams.py --rows mobilenet_v2 efficientnet_b0 convnext_tiny --against 8517c8d
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy.linalg
import torch
from prune_speed import ROWS, run_row
from results_io import REPO, record

from cplitool.toolchain.prune import lasso, solver
from tests.conftest import load_script


def source_at(rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def module_from(code: str, name: str, folder: Path) -> ModuleType:
    """Import `code` as module `name` from a file in `folder` (numba caches beside it)."""
    path = folder / f"{name}.py"
    path.write_text(code)
    return load_script(path)


def lasso_at(rev: str, folder: Path) -> ModuleType:
    """toolchain/prune/lasso.py as it was at `rev`, with the cholesky.py of that revision where it used one."""
    code = source_at(rev, "toolchain/prune/lasso.py")
    if "from cplitool.toolchain.prune.cholesky import" in code:
        name = f"cholesky_{rev}"
        module_from(source_at(rev, "toolchain/prune/cholesky.py"), name, folder)
        code = code.replace("from cplitool.toolchain.prune.cholesky import", f"from {name} import")
    return module_from(code, f"lasso_{rev}", folder)


def recorded(row: str) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Every LASSO problem of one prune of the row."""
    problems: list[tuple[np.ndarray, np.ndarray, int]] = []
    current = solver.select_exact

    def keep_problem(Q: np.ndarray, q: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
        problems.append((np.array(Q, dtype=np.float64), np.array(q, dtype=np.float64), keep))
        return current(Q, q, keep)

    solver.select_exact = keep_problem  # type: ignore[assignment]
    try:
        run_row(ROWS[row], "cpu")
    finally:
        solver.select_exact = current
    return problems


def least_squares(Q: np.ndarray, q: np.ndarray, kept: np.ndarray) -> float:
    """min_b 1/2 b^T Q_SS b - q_S^T b on the kept channels (lstsq: Q_SS may be singular)."""
    Qs = Q[np.ix_(kept, kept)]
    b = scipy.linalg.lstsq(Qs, q[kept])[0]
    return float(0.5 * b @ Qs @ b - q[kept] @ b)


def compare(problems: list[tuple[np.ndarray, np.ndarray, int]], old: ModuleType, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ours_s = theirs_s = 0.0
    same, worse, better, scale = 0, [], [], []
    for Q, q, keep in problems:  # untimed: numba compiles every loop either solver reaches (a revision's
        for solver_module in (lasso, old):  # cache starts empty) outside the timed calls
            solver_module.select_exact(Q, q, keep)
    for Q, q, keep in problems:
        start = time.perf_counter()
        _, ours = lasso.select_exact(Q, q, keep)
        ours_s += time.perf_counter() - start
        start = time.perf_counter()
        _, theirs = old.select_exact(Q, q, keep)
        theirs_s += time.perf_counter() - start
        if np.array_equal(ours, theirs):
            same += 1
            continue
        base = least_squares(Q, q, theirs)
        rel = (least_squares(Q, q, ours) - base) / abs(base)  # positive: ours reconstructs worse
        (worse if rel > 0 else better).append(rel)
        random = np.sort(rng.choice(len(q), keep, replace=False))
        scale.append((least_squares(Q, q, random) - base) / abs(base))
    return {
        "problems": len(problems),
        "channels": f"{min(len(p[1]) for p in problems)}-{max(len(p[1]) for p in problems)}",
        "ours_s": ours_s,
        "theirs_s": theirs_s,
        "same": same,
        "worst_worse": max(worse, default=0.0),
        "median_differs": statistics.median(worse + better) if worse + better else 0.0,
        "random_median": statistics.median(scale) if scale else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows", nargs="+", choices=list(ROWS), default=["mobilenet_v2", "efficientnet_b0", "convnext_tiny"]
    )
    ap.add_argument("--against", default="8517c8d", help="the git revision whose LASSO is compared")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="lasso_real_grams")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        old = lasso_at(args.against, Path(folder))
        for row in args.rows:
            result = {"row": row, **compare(recorded(row), old)}
            results.append(result)
            print(result, flush=True)
    table = [
        f"Every LASSO problem of one prune (prune_speed.py's row, cpli to 50% of MACs), solved again by this checkout "
        f"and by {args.against} in one process, one after the other. Kept sets that differ are scored by their "
        "least-squares objective relative to the revision's (positive: this checkout's reconstructs worse); a random "
        "kept set of the same size is scored the same way, for scale.",
        "",
        f"| row | problems | channels | this checkout (s) | {args.against} (s) | ratio | same kept channels "
        "| worst relative objective | median where they differ | random set, median |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {r['row']} | {r['problems']} | {r['channels']} | {r['ours_s']:.2f} | {r['theirs_s']:.2f} "
            f"| {r['theirs_s'] / r['ours_s']:.1f}x | {r['same']} of {r['problems']} | {r['worst_worse']:+.1e} "
            f"| {r['median_differs']:+.1e} | {'-' if r['same'] == r['problems'] else format(r['random_median'], '+.1e')} |"
            for r in results
        ],
    ]
    print("\n".join(table))
    record(args.name, "LASSO on real Grams: this checkout against a revision", table, {"rows": results}, 1)


if __name__ == "__main__":
    main()
