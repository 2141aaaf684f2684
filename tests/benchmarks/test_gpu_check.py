"""The GPU check's dry run: the same code path as on a GPU host, on the CPU with tiny settings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dry_run_benches_dense_and_pruned_and_says_what_it_skipped(tmp_path: Path) -> None:
    gpu_check = load_script()
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
    assert doc["pycuda"]["status"] == "skipped"
    assert (tmp_path / "gpu_check_dryrun.md").read_text().startswith("# GPU check (dry run on the CPU)")


def test_without_a_gpu_the_real_run_refuses_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert load_script().main([]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
