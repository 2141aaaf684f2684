"""benchmarks/int8_quality.py on a random-weight digits run: every variant scored against FP32 on the same
images, timed against it, and tabulated."""

from __future__ import annotations

from pathlib import Path

from cplitool.deploy.export.stage import Exporter, export_stage
from tests.conftest import load_script
from tests.deploy.pruned_run import make_run

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "int8_quality.py"


def test_variants_are_scored_paired_and_timed(in_tmp: Path) -> None:
    bench = load_script(SCRIPT)
    recipe, run = make_run(in_tmp)
    entry = export_stage(recipe, run, models=["dense"], precisions=["fp32"])
    exporter = Exporter(recipe, run, trt=False)
    fp32 = run.path / entry["files"][0]["path"]
    rows = bench.measure_model(exporter, fp32, ["minmax", "percentile+ends"], run.path, 1, 2, [2])
    assert rows["fp32"]["images"] == 360
    for name, method, kept in (("minmax", "minmax", 0), ("percentile+ends", "percentile", 2)):
        r = rows[name]
        assert r["calibration_method"] == method and len(r["fp32_nodes"]) == kept
        assert r["drop"]["images"] == 360 and r["drop"]["low"] <= r["drop"]["points"] <= r["drop"]["high"]
        lat = r["latency"][2]
        assert lat["rounds"] == 2 and lat["ratio_min"] <= lat["ratio"] <= lat["ratio_max"]
        assert (run.path / f"dense.{name}.int8.onnx").is_file()
    assert rows["fp32"]["latency"][2]["ratio"] == 1.0
    lines = bench.table({"digits": {"dense": rows}}, ["minmax", "percentile+ends"], [2])
    assert len(lines) == 4 and "| digits | dense |" in lines[2] and "b2 INT8/FP32" in lines[0]
