from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from cplitool.cli.run_table import render, summarize
from cplitool.deploy.bench.stage import bench_stage
from tests.deploy.pruned_run import make_run


def test_run_table_shows_spreads_and_the_ratio_row_within_80_columns(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp, onnx=True)
    bench_stage(recipe, run, batches=[2], backends=["onnxruntime"])
    summary = summarize(recipe, run)
    dense = next(r for r in summary.rows if r["model"] == "dense")["latency_ms"][2]
    assert dense["p10"] <= dense["p90"] and dense["rounds"] == 2
    ratio = summary.ratio
    assert ratio["model"] == "pruned" and 0.2 < ratio["macs"] < 0.3  # the fixture halves every width
    assert ratio["latency"][2]["p10"] <= ratio["latency"][2]["median"] <= ratio["latency"][2]["p90"]
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(render(summary, "benchtest"))
    assert isinstance(console.file, io.StringIO)
    text = console.file.getvalue()
    assert "pruned /" in text and f"{ratio['macs']:.2f}" in text
    assert f"{2 * 1000 / dense['median']:,.0f}/s" in text  # throughput beside the latency
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
