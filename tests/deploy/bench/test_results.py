from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.results import latest, merge, read_previous, stamp
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
    merged, kept = merge(stamp(doc([1, 64], created="t1")), stamp(doc([64], created="t2")))
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
    merged, kept = merge(stamp(doc([1], sha="old")), stamp(doc([64], sha="new")))
    assert kept == 0 and [c["batch"] for c in merged["comparisons"]] == [64]
    assert merge(None, stamp(doc([64])))[1] == 0


def test_every_row_names_its_invocation_and_latest_keeps_only_its_own() -> None:
    first, second = stamp(doc([1, 64], created="t1")), stamp(doc([64], created="t2"))
    merged, _ = merge(first, second)
    ids = {first["invocation"]["id"]: 1, second["invocation"]["id"]: 64}
    assert len(ids) == 2 and all(ids[r["invocation"]] == r["batch"] for r in merged["comparisons"])
    assert [i["id"] for i in merged["invocations"]] == list(ids)  # both, with their commands
    assert all("command" in i and i["command"] for i in merged["invocations"])
    now, hidden = latest(merged)
    assert [c["batch"] for c in now["comparisons"]] == [64] and hidden == 3
    legacy = doc([1])  # written before invocations were recorded: shown whole
    assert latest(legacy) == (legacy, 0)


def test_bench_table_shows_this_invocations_rows(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Issue 19: after `bench --backend onnxruntime` the table still showed an earlier torch row."""
    make_run(in_tmp, onnx=True)
    assert cli("bench", "runs/benchtest", "--backend", "torch", "--batch", "2").code == 0
    result = cli("bench", "runs/benchtest", "--backend", "onnxruntime", "--batch", "2")
    assert result.code == 0, result.err
    assert "torch" not in result.out and "onnxruntime" in result.out
    assert "not shown: 3 rows of earlier benches" in " ".join(result.out.split())
    every = cli("bench", "runs/benchtest", "--backend", "onnxruntime", "--batch", "2", "--all-rows")
    assert "torch" in every.out and "not shown" not in every.out


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
