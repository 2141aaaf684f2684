"""The GPU check's dry run: the same code path as on a GPU host, on the CPU with tiny settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_dry_run_benches_dense_and_pruned_and_says_what_it_skipped(tmp_path: Path) -> None:
    gpu_check = load_script(SCRIPT)
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "gpu_check_dryrun.json").read_text())
    assert doc["dry_run"] and doc["tests"]["status"] == "ok"
    keys = {(c["arch"], c["precision"], c["variant"], c["batch"]) for c in doc["comparisons"]}
    assert keys == {(a, "fp32", "eager", b) for a in ("quick_vgg", "resnet20") for b in (1, 2)}
    for c in doc["comparisons"]:
        assert 0.3 < c["macs_ratio"] < 0.7 and c["ratio"]["median"] > 0
    assert {m["model"] for m in doc["measurements"]} == {"dense", "pruned"}
    reasons = {s["reason"] for s in doc["skipped"]}
    assert reasons == {"dry run on the CPU: FP16 and CUDA graphs need a GPU"}
    assert doc["failed"] == [] and doc["status"] == "ok"
    assert sorted(doc["io"]) == ["cuda-python", "pycuda", "torch"]
    assert {r["status"] for r in doc["io"].values()} == {"skipped"} and doc["pycuda_build"]["status"] == "skipped"
    assert (tmp_path / "gpu_check_dryrun.md").read_text().startswith("# GPU check (dry run on the CPU)")


def test_a_failing_configuration_is_recorded_the_rest_run_and_the_exit_code_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches a device error (here at batch 2) ending the check without its JSON, or being lost."""
    gpu_check = load_script(SCRIPT)
    real = gpu_check.interleaved

    def flaky(runners, inputs, *args):  # type: ignore[no-untyped-def]
        if inputs["dense"].shape[0] == 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(runners, inputs, *args)

    monkeypatch.setattr(gpu_check, "interleaved", flaky)
    monkeypatch.setattr(gpu_check, "DRY", dataclasses.replace(gpu_check.DRY, archs=("quick_vgg",)))
    monkeypatch.setattr(gpu_check, "run_gpu_tests", lambda s, b: 1 / 0)  # a step that raises
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 1
    doc = json.loads((tmp_path / "gpu_check_dryrun.json").read_text())
    assert doc["status"] == "failed"
    assert doc["tests"] == {"status": "failed", "reason": "ZeroDivisionError: division by zero"}
    assert [(f["arch"], f["batch"]) for f in doc["failed"]] == [("quick_vgg", 2)]
    assert all(f["reason"].startswith("RuntimeError: CUDA error") for f in doc["failed"])
    assert {c["batch"] for c in doc["comparisons"]} == {1}  # batch 1 still measured


def test_without_a_gpu_the_real_run_refuses_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert load_script(SCRIPT).main([]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
