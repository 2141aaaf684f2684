from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cplitool.deploy.bench.table import bench_table, number
from tests.deploy.pruned_run import make_run


def row(model: str, median: float, rounds: list[float], batch: int = 64) -> dict[str, Any]:
    key = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32", "variant": "cpu", "threads": 2}
    return {
        **key,
        "batch": batch,
        "model": model,
        "primary_metric": "latency",
        "latency_ms": {"median": median},
        "round_medians_ms": rounds,
    }


def bench_doc() -> dict[str, Any]:
    key = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32", "variant": "cpu", "threads": 2, "batch": 64}
    return {
        "model": "resnet50",
        "models": {"dense": {"macs": 4_100_000_000}, "pruned": {"macs": 2_050_000_000}},
        "measurements": [row("dense", 11.15, [10.2, 11.1, 12.9]), row("pruned", 2.07, [2.0, 2.07, 2.1])],
        "comparisons": [{**key, "ratio": {"rounds": [0.15, 0.19, 0.2]}}],
    }


def render(doc: dict[str, Any]) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(bench_table(doc))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_table_shows_medians_spreads_and_unstable_rows() -> None:
    """The issue's quickstart row: dense 11.15 ms spreading 26% over rounds, a ratio spreading 30%."""
    text = render(bench_doc())
    assert "11.15" in text and "10.20-12.90" in text  # dense median, p10-p90 of its rounds
    assert "2.070" in text and "2.000-2.100" in text  # pruned: 5% wide, stable
    assert "0.190" in text and "0.150-0.200" in text  # the ratio with its interval
    assert text.count("unstable") == 1 + 2  # the caption's definition, then dense and the ratio
    assert "MACs ratio pruned/dense 0.500" in text
    assert "5,740/s" in text and "30,918/s" in text  # batch 64 at 11.15 ms and at 2.07 ms
    assert text.count("/s") == 2 + 1  # under each latency (the caption: "images/s"), never under the ratio
    assert "…" not in text and max(map(len, text.splitlines())) <= 80


@pytest.mark.parametrize(
    ("value", "text"), [(0.02541, "0.0254"), (0.969, "0.969"), (11.153, "11.15"), (102.44, "102.4")]
)
def test_numbers_keep_four_significant_figures(value: float, text: str) -> None:
    assert number(value) == text


def test_bench_cli_table_fits_80_columns_when_piped(in_tmp: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("COLUMNS", raising=False)  # stdout is captured: not a TTY, so rich uses 80 columns
    make_run(in_tmp, onnx=True)
    result = cli("bench", "runs/benchtest", "--backend", "onnxruntime", "--backend", "torch", "--batch", "3")
    assert result.code == 0, result.err
    assert "pruned /" in result.out and "…" not in result.out
    assert max(map(len, result.out.splitlines())) <= 80
