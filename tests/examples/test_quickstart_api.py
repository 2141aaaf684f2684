"""The notebook-style example of docs/python-api.md runs end to end: train, prune, export, bench, reload."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO, load_script


def test_quickstart_api_example_runs(tmp_path: Path) -> None:
    example = load_script(REPO / "examples" / "quickstart_api.py")
    result = example.main(tmp_path, epochs=2, bench_seconds=0.1)
    assert abs(result["macs_keep"] - 0.5) <= 0.01 + 1e-9  # within the 2% the planner promises
    assert result["dense_top1"] > 50.0 and result["pruned_top1"] > 50.0  # trained, not chance (10%)
    assert {p.name for p in tmp_path.iterdir()} >= {"dense.onnx", "pruned.onnx", "pruned.pt"}
