from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.results import merge, read_previous
from cplitool.deploy.bench.stage import bench_stage
from tests.deploy.pruned_run import make_run


def doc(batches: list[int], sha: str = "a", created: str = "t1") -> dict[str, Any]:
    key = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32", "variant": "cpu", "threads": 2}
    return {
        "schema": "cplitool-bench/1",
        "created": created,
        "models": {"dense": {"sha256": sha}, "pruned": {"sha256": sha + "p"}},
        "measurements": [{**key, "batch": b, "model": m, "t": created} for b in batches for m in ("dense", "pruned")],
        "comparisons": [{**key, "batch": b, "t": created} for b in batches],
    }


def test_merge_replaces_the_rows_measured_again_and_keeps_the_others() -> None:
    """Catches the old behaviour (a new bench drops every earlier row) and a merge that keeps stale twins."""
    merged, kept = merge(doc([1, 64], created="t1"), doc([64], created="t2"))
    assert kept == 3  # batch 1: dense, pruned and their comparison
    assert [(c["batch"], c["t"]) for c in merged["comparisons"]] == [(1, "t1"), (64, "t2")]
    assert [(m["batch"], m["model"], m["t"]) for m in merged["measurements"]] == [
        (1, "dense", "t1"),
        (1, "pruned", "t1"),
        (64, "dense", "t2"),
        (64, "pruned", "t2"),
    ]
    assert all(r["measured_at"] == "t2" for r in merged["comparisons"] if r["batch"] == 64)


def test_rows_of_other_model_files_are_dropped() -> None:
    merged, kept = merge(doc([1], sha="old"), doc([64], sha="new"))
    assert kept == 0 and [c["batch"] for c in merged["comparisons"]] == [64]
    assert merge(None, doc([64]))[1] == 0


def test_unreadable_previous_file_is_replaced(tmp_path: Path) -> None:
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    assert read_previous(bad) is None and read_previous(tmp_path / "absent.json") is None


def test_bench_at_one_batch_keeps_the_other_batch_in_bench_json(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)
    bench_stage(recipe, run, batches=[1, 2], backends=["torch"])
    bench_stage(recipe, run, batches=[2], backends=["torch"])
    saved = json.loads(run.file("bench.json").read_text())
    assert sorted(c["batch"] for c in saved["comparisons"]) == [1, 2]
    assert sorted((m["batch"], m["model"]) for m in saved["measurements"]) == [
        (1, "dense"),
        (1, "pruned"),
        (2, "dense"),
        (2, "pruned"),
    ]
    assert saved["settings"]["batches"] == [2]  # the settings are the latest bench's
