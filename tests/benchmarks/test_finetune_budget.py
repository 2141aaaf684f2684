"""The fine-tune budget study's summary: per-budget spread over seeds, and the fewest epochs within a point
of dense."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_budget.py"


def cells(method: str, top1: dict[float, list[float]]) -> list[dict[str, object]]:
    return [
        {"model": "m", "method": method, "seed": seed, "budget_epochs": b, "top1": v}
        for b, values in top1.items()
        for seed, v in enumerate(values)
    ]


def test_fewest_epochs_within_a_point_of_dense() -> None:
    """Caught: 'recovered' judged on the best seed instead of the mean, or on the first budget that merely
    improved; the half-width missing where there are several seeds."""
    budget = load_script(SCRIPT)
    data = cells("fast", {0: [80.0, 81.0, 82.0], 0.5: [89.0, 89.2, 89.4], 1: [89.5, 89.6, 89.7]})
    data += cells("slow", {0: [10.0, 10.0, 10.0], 0.5: [87.0, 88.0, 89.5], 1: [88.0, 88.5, 89.0], 4: [89.5]})
    rows, summary = budget.summarise(data, {"m": 90.0}, [0, 0.5, 1, 4])
    by = {s["method"]: s for s in summary}
    assert by["fast"]["recovered_at_epochs"] == 0.5  # mean 89.2 >= 89
    assert by["slow"]["recovered_at_epochs"] == 4  # mean 88.17 at 0.5 (one seed above 89), 88.5 at 1
    half = by["fast"]["budgets"]["0"]["half_width_95"]
    assert half == pytest.approx(4.3027 * 1.0 / 3**0.5, rel=1e-4)  # stdev 1 over 3 seeds
    assert by["slow"]["budgets"]["4"] == {"mean": 89.5, "half_width_95": None, "seeds": 1}
    assert "| m (90.00%) | slow |" in rows[3] and rows[3].endswith("| 4 |")


def test_never_recovered_says_so() -> None:
    budget = load_script(SCRIPT)
    rows, summary = budget.summarise(cells("x", {0: [50.0], 1: [70.0]}), {"m": 90.0}, [0, 1])
    assert summary[0]["recovered_at_epochs"] is None
    assert rows[-1].endswith("| none up to 1 |")


def test_cells_of_another_checkpoint_are_left_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Caught: a retrained dense checkpoint's table mixing in the cached cells of the old one."""
    budget = load_script(SCRIPT)
    monkeypatch.setattr(budget, "checkpoint_tag", lambda model: "new")
    monkeypatch.setattr(budget, "CELLS", tmp_path / "cells.json")
    cell = {"model": "m", "method": "cpli all", "seed": 0, "budget_epochs": 0.0}
    stored = {f"m@{tag}|cpli all|0.5|1000|0|0.0": {**cell, "top1": top1} for tag, top1 in [("old", 1.0), ("new", 2.0)]}
    budget.CELLS.write_text(json.dumps(stored))
    args = argparse.Namespace(methods="cpli all", macs_keep=0.5, num_images=1000)
    assert [c["top1"] for c in budget.cached_cells(args, ["m"])] == [2.0]
    assert budget.cell_key("m", "cpli all", 0, 0, args) == "m@new|cpli all|0.5|1000|0|0.0"
