from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cplitool.deploy.bench.results import merge, stamp
from cplitool.deploy.regress import compare, make_baseline, parse_tolerance
from cplitool.toolchain.errors import UsageError


def bench_doc(
    ratio: float,
    device: str = "cpu",
    compute_ms: float = 1.0,
    batch: int = 64,
    threads: int | None = None,
    metric: str = "latency",
    cv: float = 0.02,
) -> dict[str, Any]:
    key = {"backend": "onnxruntime", "device": device, "precision": "fp32", "variant": "cpu", "batch": batch}
    if threads:
        key["threads"] = threads
    stats = {"median": compute_ms, "cv": cv}
    return {
        "schema": "cplitool-bench/1",
        "environment": {"cpu": "AMD EPYC", "logical_cpus": 2, "load_average": [3.0, 2.0, 1.0]},
        "settings": {"threads": threads, "batches": [batch], "repeats": 10},
        "models": {
            "dense": {"source": "/abs/dense.onnx", "macs": 100},
            "pruned": {"source": "/abs/p.onnx", "macs": 50},
        },
        "measurements": [
            {**key, "model": m, "status": "ok", "primary_metric": "compute", "compute_ms": stats, "latency_ms": stats}
            for m in ("dense", "pruned")
        ],
        "comparisons": [{**key, "ratio": {"median": ratio, "cv": cv, "metric": metric}}],
    }


def write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def test_gate_passes_against_an_equal_baseline(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    result = cli("regress", cur, "--baseline", write(tmp_path, "base.json", bench_doc(0.55)))
    assert result.code == 0, result.err
    assert "ok" in result.out


def test_a_row_is_never_compared_with_itself(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    doc = stamp(bench_doc(0.55))
    cur = write(tmp_path, "cur.json", doc)
    result = cli("regress", cur, "--baseline", cur)
    assert result.code == 2 and "compared with itself" in result.err and "ok" not in result.out
    copy_ = write(tmp_path, "copy.json", doc)  # a bench.json copied as the baseline: the same invocation's rows
    result = cli("regress", cur, "--baseline", copy_)
    assert result.code == 2 and "same measurement of" in result.err and doc["invocation"]["id"] in result.err
    base = write(tmp_path, "base.json", make_baseline([doc, stamp(bench_doc(0.56))]))  # a baseline made from it
    assert cli("regress", cur, "--baseline", base).code == 2
    assert cli("regress", write(tmp_path, "new.json", stamp(bench_doc(0.55))), "--baseline", base).code == 0


def test_regress_gates_only_the_latest_invocations_rows(tmp_path: Path) -> None:
    """A bench.json keeps earlier rows it did not measure again; regress must not present one as "now"."""

    def bench(batch: int) -> dict[str, Any]:
        doc = bench_doc(0.55, batch=batch)
        for m, v in doc["models"].items():
            v["sha256"] = m * 8  # the same model files in every bench: rows merge
        return stamp(doc)

    old = bench(1)
    merged, kept = merge(old, bench(64))
    assert kept == 3 and {r["batch"] for r in merged["comparisons"]} == {1, 64}  # 2 measurements, 1 ratio
    report = compare(merged, merge(old, bench(64))[0], None)
    assert [r.key for r in report.rows] == ["onnxruntime cpu fp32 cpu b64"]  # batch 1 is the old row: not now
    assert report.missing == ["onnxruntime cpu fp32 cpu b1"]


def test_gate_fails_against_a_baseline_20_percent_faster(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    base = write(tmp_path, "base.json", bench_doc(0.55 * 0.8))
    result = cli("regress", cur, "--baseline", base, "--tolerance", "5%")
    assert result.code == 1
    assert "REGRESSED" in result.out and "latency regressed" in result.err
    assert cli("regress", cur, "--baseline", base, "--tolerance", "30%").code == 0  # within a wide tolerance


def test_gate_exit_2_on_a_mismatched_device(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    base = write(tmp_path, "base.json", bench_doc(0.55, device="cuda:NVIDIA H100 80GB HBM3"))
    result = cli("regress", cur, "--baseline", base)
    assert result.code == 2 and "device mismatch" in result.err


def test_gate_exit_2_when_files_cannot_be_compared(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    other_batch = bench_doc(0.55)
    for entry in other_batch["measurements"] + other_batch["comparisons"]:
        entry["batch"] = 1
    assert cli("regress", cur, "--baseline", write(tmp_path, "b1.json", other_batch)).code == 2
    assert cli("regress", cur, "--baseline", write(tmp_path, "b2.json", {"schema": "other"})).code == 2
    assert cli("regress", cur, "--baseline", tmp_path / "absent.json").code == 2
    result = cli("regress", cur, "--baseline", cur, "--tolerance", "five")
    assert result.code == 2 and "--tolerance" in result.err


def test_gpu_entries_gate_median_gpu_compute_per_model() -> None:
    gpu = "cuda:NVIDIA H100 80GB HBM3"
    base = bench_doc(0.55, device=gpu, compute_ms=1.0)
    cur = copy.deepcopy(base)
    cur["measurements"][1]["compute_ms"] = {"median": 1.2}  # pruned 20% slower on the GPU
    report = compare(cur, base, 0.05)
    assert [r.key.split()[-1] for r in report.regressed] == ["pruned"]
    assert all("GPU compute" in r.metric for r in report.rows)


def test_parse_tolerance() -> None:
    assert parse_tolerance("5%") == pytest.approx(0.05)
    assert parse_tolerance("0.1") == pytest.approx(0.1)
    assert parse_tolerance("0") == 0.0
    for bad in ("-3%", "nan", "inf%", "-inf", "NaN%"):
        with pytest.raises(UsageError, match="finite, non-negative"):
            parse_tolerance(bad)


@pytest.mark.parametrize("bad", ["nan", "inf%", "-1%"])
def test_a_tolerance_that_cannot_fail_is_exit_2(tmp_path: Path, cli, bad: str) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.6108, cv=0.038))
    base = write(tmp_path, "base.json", bench_doc(0.5777, cv=0.048))
    result = cli("regress", cur, "--baseline", base, "--tolerance", bad)
    assert result.code == 2 and f"--tolerance {bad!r}" in result.err and "ok" not in result.out


def test_tolerance_from_the_spreads_avoids_the_false_alarm(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Issue 19's two benches a minute apart: 0.6108 ± 3.8% against 0.5777 ± 4.8% (+5.7%). A 5% tolerance is
    narrower than either spread; from the spreads it is 2 x sqrt(4.8² + 3.8²) = 12.2%."""
    cur = write(tmp_path, "cur.json", bench_doc(0.6108, cv=0.038))
    base = write(tmp_path, "base.json", bench_doc(0.5777, cv=0.048))
    result = cli("regress", cur, "--baseline", base)
    assert result.code == 0, result.err
    assert "(+12.2%)" in result.out and "warning" not in result.out
    given = cli("regress", cur, "--baseline", base, "--tolerance", "5%")
    assert given.code == 1 and "REGRESSED" in given.out
    assert "tolerance 5.0% is smaller than the measured spread" in " ".join(given.out.split())


def test_tolerance_from_the_spreads_still_catches_a_real_regression() -> None:
    report = compare(bench_doc(0.60, cv=0.01), bench_doc(0.50, cv=0.01), None)
    (row,) = report.rows
    assert row.tolerance_from == "spreads" and row.tolerance == pytest.approx(0.05)  # floor: 2 x 1.4% < 5%
    assert row.regressed and report.warnings == []


def test_baseline_and_tolerance_default_to_the_run_recipe(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.deploy.pruned_run import make_run

    recipe, run = make_run(in_tmp)
    bench = write(run.path, "bench.json", bench_doc(0.55))
    assert cli("regress", bench).code == 2  # the recipe names no baseline
    base = write(in_tmp, "base.json", bench_doc(0.55 * 0.8))
    recipe.source.write_text(recipe.source.read_text() + f'[regress]\nbaseline = "{base}"\n')
    assert cli("regress", bench).code == 1  # 25% slower: beyond the 5% the spreads (2%) call for
    recipe.source.write_text(recipe.source.read_text() + "tolerance = 0.3\n")
    assert cli("regress", bench).code == 0  # within the recipe's 30%
    assert cli("regress", bench, "--tolerance", "5%").code == 1


def measured_baseline(folder: Path, ratios: list[float], multiple: float = 5.0, **kw: Any) -> Path:
    return write(folder, "baseline.json", make_baseline([bench_doc(r, **kw) for r in ratios], multiple))


def test_measured_baseline_is_median_spread_and_multiple_of_spread(tmp_path: Path) -> None:
    """Catches a spread taken as the population std or over the mean, a median taken as the mean, and a
    tolerance not equal to multiple x spread."""
    doc = make_baseline([bench_doc(r, threads=1) for r in (0.50, 0.52, 0.51, 0.60)], multiple=4.0)
    (fig,) = doc["figures"].values()
    assert fig["value"] == pytest.approx(0.515)
    assert fig["spread"] == pytest.approx((0.006275 / 3) ** 0.5 / 0.515)  # sample std (sum of squares / 3) / median
    assert fig["tolerance"] == pytest.approx(4.0 * fig["spread"])
    assert fig["batch"] == 64 and fig["threads"] == 1
    assert doc["machine"]["cpu"] == "AMD EPYC" and len(doc["load_average"]) == 4
    assert "/abs" not in json.dumps(doc)  # no paths of the machine it was made on
    with pytest.raises(UsageError, match="at least 2"):
        make_baseline([bench_doc(0.5)])


def test_gate_uses_the_measured_tolerance_and_fails_just_above_it(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Baseline 0.5 with a 2% spread and multiple 5: limit 0.55. Catches a limit built from the spread alone, from
    the default 5%, or compared the wrong way round."""
    base = measured_baseline(tmp_path, [0.49, 0.50, 0.51])  # sample std 0.01 -> spread 2%, tolerance 10%
    just_below = write(tmp_path, "ok.json", bench_doc(0.549))
    just_above = write(tmp_path, "bad.json", bench_doc(0.551))
    faster = write(tmp_path, "fast.json", bench_doc(0.40))
    assert cli("regress", just_below, "--baseline", base).code == 0
    assert cli("regress", faster, "--baseline", base).code == 0
    result = cli("regress", just_above, "--baseline", base)
    assert result.code == 1
    assert "now 0.5510 ± 2.0%" in result.err and "baseline 0.5000 ± 2.0%" in result.err  # both, with spreads
    assert "limit 0.5500 (+10.0%)" in result.err
    assert cli("regress", just_above, "--baseline", base, "--tolerance", "20%").code == 0  # the flag wins


def test_regress_refuses_other_threads_or_batch_naming_them_and_the_flags(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    base = measured_baseline(tmp_path, [0.49, 0.50, 0.51], batch=16, threads=1)
    other = write(tmp_path, "bench.json", bench_doc(0.5, batch=64, threads=2))
    result = cli("regress", other, "--baseline", base)
    assert result.code == 2
    assert str(other) in result.err and str(base) in result.err
    assert "batch 64 with 2 threads" in result.err and "batch 16 with 1 thread)" in result.err
    assert "--batch 16 --threads 1" in result.err
    same_batch = write(tmp_path, "t2.json", bench_doc(0.5, batch=16, threads=2))
    result = cli("regress", same_batch, "--baseline", base)
    assert result.code == 2 and "batch 16 with 2 threads" in result.err


def test_regress_refuses_a_latency_ratio_against_a_cpu_time_baseline(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    base = measured_baseline(tmp_path, [0.49, 0.50, 0.51], metric="cpu")
    result = cli("regress", write(tmp_path, "bench.json", bench_doc(0.5)), "--baseline", base)
    assert result.code == 2 and "CPU-time ratio" in result.err and "cplitool gate" in result.err


def test_no_baseline_says_so_and_passes_only_when_asked(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    absent = tmp_path / "gpu-h100.json"
    result = cli("regress", cur, "--baseline", absent, "--no-baseline-ok")
    assert result.code == 0 and "no baseline" in result.out and "cplitool baseline" in result.out
    assert cli("regress", cur, "--baseline", absent).code == 2


def test_baseline_command_writes_a_measured_baseline(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    files = [write(tmp_path, f"b{i}.json", bench_doc(r)) for i, r in enumerate((0.49, 0.50, 0.51))]
    out = tmp_path / "base.json"
    result = cli("baseline", out, *files, "--multiple", "3")
    assert result.code == 0, result.err
    assert "tolerance 6.0%" in result.out
    assert json.loads(out.read_text())["schema"] == "cplitool-baseline/1"
    assert cli("baseline", out, files[0]).code == 2
