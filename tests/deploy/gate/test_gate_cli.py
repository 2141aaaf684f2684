"""`cplitool gate` end to end on a small pair with short timings: record a baseline, pass, fail, refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cplitool.deploy.gate import run
from cplitool.deploy.gate.measure import GateTiming
from cplitool.deploy.gate.pair import Pair
from tests.deploy.gate.conftest import SMALL

SHORT = GateTiming(batch=2, repeats=2, duration_s=0.2, warmup_ms=10.0, min_iters=2)


@pytest.fixture
def small_gate(small_pair: tuple[Pair, Path], in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`cplitool gate` on the small pair with short timings; returns the baseline path it will use."""
    monkeypatch.setattr(run, "GATE", run.GateSetup(SMALL, SHORT, small_pair[1].parent))
    return in_tmp / "cpu.json"


def test_gate_records_a_baseline_then_passes_fails_and_retries_under_load(
    small_gate: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    result = cli("gate", "--baseline", small_gate, "--record", "2", "--multiple", "4")
    assert result.code == 0, result.err
    doc = json.loads(small_gate.read_text())
    (fig,) = doc["figures"].values()
    assert (fig["batch"], fig["threads"], len(fig["runs"])) == (2, 1, 2)
    assert fig["metric"] == "pruned/dense CPU-time ratio" and fig["tolerance"] == pytest.approx(4 * fig["spread"])
    assert str(small_gate.parent) not in small_gate.read_text()  # no absolute paths
    assert cli("gate", "--baseline", small_gate, "--tolerance", "300%").code == 0

    fig["value"] /= 3  # a baseline three times faster: any measurement now regresses
    small_gate.write_text(json.dumps(doc))
    monkeypatch.setattr(run, "loaded", lambda load, cores: (True, 9.0, 2))
    result = cli("gate", "--baseline", small_gate)
    assert result.code == 1
    assert "load average 9.00 > 2 cores): measuring once more" in result.out
    assert "the second measurement regressed too" in result.out
    assert "latency regressed" in result.err and "now " in result.err and f"baseline {fig['value']:.4f}" in result.err


def test_gate_refuses_a_baseline_of_another_batch(small_gate: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from cplitool.deploy.regress import make_baseline
    from tests.deploy.test_regress import bench_doc

    small_gate.write_text(json.dumps(make_baseline([bench_doc(r, batch=64, threads=1) for r in (0.5, 0.51)])))
    result = cli("gate", "--baseline", small_gate)
    assert result.code == 2 and "batch 2 with 1 thread" in result.err and "--batch 64 --threads 1" in result.err
    assert cli("gate", "--baseline", small_gate, "--record", "1").code == 2  # no spread from one measurement
