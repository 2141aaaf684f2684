"""The gate's decision: one measurement, or a second one when a regression was seen on a loaded machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cplitool.deploy.gate.run import loaded, record_baseline, run_gate
from cplitool.deploy.regress import make_baseline
from tests.deploy.test_regress import bench_doc

BASELINE = make_baseline([bench_doc(r, metric="cpu") for r in (0.49, 0.50, 0.51)], 5.0)  # limit 0.55
NAMES = ("runs/gate/bench.json", "deploy/baselines/cpu.json")


def measurer(ratios: list[float]) -> tuple[Callable[[], dict[str, Any]], list[float]]:
    """A measure() returning these ratios in turn, and the list of those it has returned."""
    done: list[float] = []

    def measure() -> dict[str, Any]:
        done.append(ratios[len(done)])
        return bench_doc(done[-1], metric="cpu")

    return measure, done


def load_of(value: float) -> Callable[[], tuple[float, float, float]]:
    return lambda: (value, value, value)


def test_a_pass_is_measured_once() -> None:
    measure, done = measurer([0.50, 0.50])
    outcome = run_gate(measure, BASELINE, None, NAMES, load_of(9.0), cores=2)
    assert outcome.passed and done == [0.50] and not outcome.notes


def test_a_regression_on_a_quiet_machine_fails_without_a_retry() -> None:
    measure, done = measurer([0.60, 0.50])
    outcome = run_gate(measure, BASELINE, None, NAMES, load_of(1.5), cores=2)
    assert not outcome.passed and done == [0.60] and not outcome.notes


def test_a_regression_under_load_is_measured_again_and_the_retry_decides() -> None:
    measure, done = measurer([0.60, 0.50])
    outcome = run_gate(measure, BASELINE, None, NAMES, load_of(9.0), cores=2)
    assert outcome.passed and done == [0.60, 0.50]
    assert "load average 9.00 > 2 cores" in outcome.notes[0] and "now 0.6000" in outcome.notes[0]
    assert outcome.notes[1] == "the second measurement passed"
    assert outcome.doc["comparisons"][0]["ratio"]["median"] == 0.50  # the deciding measurement is kept


def test_a_regression_seen_twice_under_load_fails_after_one_retry() -> None:
    measure, done = measurer([0.60, 0.61, 0.50])
    outcome = run_gate(measure, BASELINE, None, NAMES, load_of(9.0), cores=2)
    assert not outcome.passed and done == [0.60, 0.61]  # once more, not until it passes
    assert outcome.notes[1] == "the second measurement regressed too"
    assert "now 0.6100" in outcome.report.failure() and "baseline 0.5000 ± 2.0%" in outcome.report.failure()


@pytest.mark.parametrize(("load", "busy"), [(2.0, False), (2.01, True)])
def test_loaded_means_load_average_above_the_core_count(load: float, busy: bool) -> None:
    assert loaded(load_of(load), cores=2)[0] is busy


def test_record_baseline_measures_the_asked_number_of_times() -> None:
    measure, done = measurer([0.49, 0.50, 0.51, 0.9])
    doc = record_baseline(measure, 3, 5.0)
    assert done == [0.49, 0.50, 0.51]
    (fig,) = doc["figures"].values()
    assert fig["runs"] == [0.49, 0.50, 0.51] and fig["metric"] == "pruned/dense CPU-time ratio"
