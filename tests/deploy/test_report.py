from __future__ import annotations

import json
from pathlib import Path

from deploy.bench.stage import bench_stage
from deploy.report import write_report
from tests.deploy.pruned_run import make_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_writes_markdown_and_three_plots(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)
    bench_stage(recipe, run, batches=[1, 2], backends=["torch"])
    (run.path / "ablation.json").write_text(
        json.dumps([{"method": "l1", "macs": 500_000, "top1": 70.0}, {"method": "l1", "macs": 900_000, "top1": 85.0}])
    )
    path = write_report(run)
    assert path == run.file("report") / "report.md"
    text = path.read_text()
    for image in ("accuracy_macs.png", "latency_batch.png", "widths.png"):
        assert f"]({image})" in text
        assert (path.parent / image).read_bytes()[:8] == PNG
    assert "| dense | 90.00 |" in text and "| pruned | 80.00 |" in text  # recorded top-1, not invented
    assert "| torch | cpu | fp32 | eager | 2 |" in text


def test_report_says_what_is_missing(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    make_run(in_tmp)
    result = cli("report", "runs/benchtest")
    assert result.code == 0, result.err
    text = (in_tmp / "runs/benchtest/report/report.md").read_text()
    assert "no bench results: run `cplitool bench`" in text
    assert not (in_tmp / "runs/benchtest/report/latency_batch.png").exists()
