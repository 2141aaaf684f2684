from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cplitool.deploy.bench.stage import bench_stage
from cplitool.deploy.report import write_report
from tests.deploy.pruned_run import make_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_writes_markdown_and_four_plots(in_tmp: Path) -> None:
    recipe, run = make_run(in_tmp)
    bench_stage(recipe, run, batches=[1, 2], backends=["torch"])
    (run.path / "ablation.json").write_text(
        json.dumps([{"method": "l1", "macs": 500_000, "top1": 70.0}, {"method": "l1", "macs": 900_000, "top1": 85.0}])
    )
    path = write_report(run)
    assert path == run.file("report") / "report.md"
    text = path.read_text()
    for image in ("accuracy_macs.png", "accuracy_latency.png", "latency_batch.png", "widths.png"):
        assert f"]({image})" in text
        assert (path.parent / image).read_bytes()[:8] == PNG
    assert "| dense | 90.00 |" in text and "| pruned | 80.00 |" in text  # recorded top-1, not invented
    table = text[text.index("## Latency against batch") :].splitlines()
    assert "| target | batch | dense ms (p10-p90) | pruned ms (p10-p90) | pruned/dense (p10-p90) |" in table[4]
    rows = [r for r in table if r.startswith("| torch cpu fp32 eager 1 threads |")]  # the plots' label too
    assert [r.split(" | ")[1] for r in rows] == ["1", "2"]
    assert all(re.search(r"\| \d+\.\d+ \(\d+\.\d+-\d+\.\d+\)", r) for r in rows)  # medians with p10-p90


def test_report_says_what_is_missing(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    make_run(in_tmp)
    result = cli("report", "runs/benchtest")
    assert result.code == 0, result.err
    text = (in_tmp / "runs/benchtest/report/report.md").read_text()
    assert "no bench results: run `cplitool bench`" in text
    assert not (in_tmp / "runs/benchtest/report/latency_batch.png").exists()


def test_report_on_a_run_with_nothing_measured_exits_2(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    _, run = make_run(in_tmp)
    for name in ("dense.pt", "pruned.pt"):
        run.file(name).unlink()
    result = cli("report", "runs/benchtest")
    assert result.code == 2
    assert "nothing to report" in result.out + result.err and "cplitool run" in result.out + result.err
    assert not run.file("report").exists()


def test_unstable_rows_say_so(in_tmp: Path) -> None:
    """A ratio whose paired rounds spread 30% is marked in report.md, a tight one is not."""
    recipe, run = make_run(in_tmp)
    bench_stage(recipe, run, batches=[1, 2], backends=["torch"])
    doc = json.loads(run.file("bench.json").read_text())
    for c in doc["comparisons"]:
        c["ratio"]["rounds"] = [0.5, 0.6, 0.65] if c["batch"] == 2 else [0.5, 0.5, 0.5]
    for m in doc["measurements"]:
        m["round_medians_ms"] = [m["latency_ms"]["median"]] * 2
    run.file("bench.json").write_text(json.dumps(doc))
    text = write_report(run).read_text()
    marked = [
        line.split(" | ")[1] for line in text.splitlines() if "**unstable**" in line and line.startswith("| torch")
    ]
    assert marked == ["2"]
    assert "0.600 (0.500-0.650) **unstable**" in text and "0.500 (0.500-0.500) |" in text


@pytest.mark.parametrize("values", [[99.72, 99.44], [30.0, 90.0], [0.5, 2.0]])
def test_top1_axis_holds_the_points_within_0_and_100(values: list[float]) -> None:
    """Catches the 104% axis: never above 100 or below 0, always with room around the points."""
    from cplitool.deploy.report import top1_limits

    lo, hi = top1_limits(values)
    assert 0.0 <= lo < min(values) and max(values) < hi <= 100.0


def test_one_batch_is_a_bar_chart_with_unstable_bars_hatched() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cplitool.deploy.bench.spread import Interval
    from cplitool.deploy.report import latency_bars

    lines = {
        "onnxruntime cpu fp32 dense": [(64, Interval(1.35, 1.32, 1.37, 5))],
        "onnxruntime cpu fp32 finetuned": [(64, Interval(0.45, 0.40, 0.60, 5))],  # 44% wide: unstable
    }
    fig, ax = plt.subplots()
    latency_bars(ax, lines)
    bars = ax.patches
    assert [round(b.get_height(), 2) for b in bars] == [1.35, 0.45]
    assert [b.get_hatch() for b in bars] == [None, "//"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(lines) and ax.get_xlabel() == "batch 64"
    assert [t.get_text() for t in ax.texts] == ["unstable"]
    plt.close(fig)


def test_tables_and_plots_name_a_target_alike() -> None:
    from cplitool.deploy.bench.table import target_label, target_name

    ort = {"backend": "onnxruntime", "device": "cpu", "variant": "cpu", "precision": "fp32", "threads": 2}
    graphs = {"backend": "torch", "device": "cuda:NVIDIA H200", "variant": "cudagraph", "precision": "fp16"}
    assert target_name(ort) == "onnxruntime cpu fp32" and target_label(ort) == "onnxruntime cpu fp32 2 threads"
    assert target_name(graphs) == "torch cuda:NVIDIA H200 fp16 cudagraph"


def test_compared_methods_are_rows_of_the_models_table(in_tmp: Path) -> None:
    _, run = make_run(in_tmp)
    entry = run.stage("prune")
    assert entry is not None
    compare = [{"method": "l1", "macs": 450_000, "params": 54_000, "top1": 11.11, "images": 360}]
    run.record("prune", run.artifact("prune"), "test", {**entry["metrics"], "compare": compare})
    text = write_report(run).read_text()
    assert "| l1 pruned | 11.11 (360 images) | 0.45 | 0.054 |" in text
    assert "l1 pruned: prune.compare's methods" in text


def test_a_gpu_less_bench_gets_one_line_of_gpu_advice_in_the_report() -> None:
    from cplitool.deploy.report import bench_notes

    skipped = [
        {"backend": "onnxruntime", "device": "cuda", "reason": "CUDAExecutionProvider is not available; pip ..."},
        {"backend": "tensorrt", "device": "cuda", "reason": "tensorrt is not installed: pip install ..."},
    ]
    notes = "\n".join(bench_notes({"skipped": skipped, "environment": {"gpu": {}}, "settings": {"repeats": 5}}))
    assert "GPU backends skipped (onnxruntime, tensorrt): no CUDA device" in notes and "pip" not in notes
    on_gpu = "\n".join(bench_notes({"skipped": skipped, "environment": {"gpu": {"name": "H200"}}, "settings": {}}))
    assert on_gpu.count("- skipped") == 2 and "pip" in on_gpu
