from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from deploy.regress import compare, parse_tolerance
from toolchain.errors import UsageError


def bench_doc(ratio: float, device: str = "cpu", compute_ms: float = 1.0) -> dict[str, Any]:
    key = {"backend": "onnxruntime", "device": device, "precision": "fp32", "variant": "cpu", "batch": 64}
    stats = {"median": compute_ms}
    return {
        "schema": "cplitool-bench/1",
        "measurements": [
            {**key, "model": m, "status": "ok", "primary_metric": "compute", "compute_ms": stats, "latency_ms": stats}
            for m in ("dense", "pruned")
        ],
        "comparisons": [{**key, "ratio": {"median": ratio}}],
    }


def write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def test_gate_passes_against_itself(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cur = write(tmp_path, "cur.json", bench_doc(0.55))
    result = cli("regress", cur, "--baseline", cur)
    assert result.code == 0, result.err
    assert "ok" in result.out


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
    with pytest.raises(UsageError):
        parse_tolerance("-3%")


def test_baseline_and_tolerance_default_to_the_run_recipe(in_tmp: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tests.deploy.pruned_run import make_run

    recipe, run = make_run(in_tmp)
    bench = write(run.path, "bench.json", bench_doc(0.55))
    assert cli("regress", bench).code == 2  # the recipe names no baseline
    base = write(in_tmp, "base.json", bench_doc(0.55 * 0.8))
    text = recipe.source.read_text() + f'[regress]\nbaseline = "{base}"\ntolerance = 0.3\n'
    recipe.source.write_text(text)
    assert cli("regress", bench).code == 0  # 25% slower, within the recipe's 30%
    assert cli("regress", bench, "--tolerance", "5%").code == 1
