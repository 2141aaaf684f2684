"""`cplitool gate`: prepare the pair (cached), measure it, compare with the measured baseline, retry once when loaded.

A regression seen while the machine is visibly loaded (1-minute load average above the core count) is measured
once more before it fails the gate, and the gate says so; the second measurement decides.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cplitool.deploy.gate.measure import GateTiming
from cplitool.deploy.gate.pair import PairSpec
from cplitool.deploy.regress import Report, compare, make_baseline

Load = Callable[[], tuple[float, float, float]]


@dataclass
class GateOutcome:
    report: Report
    doc: dict[str, Any]  # the bench document that decided
    notes: list[str] = field(default_factory=list)  # what the gate did beyond one measurement, for the log

    @property
    def passed(self) -> bool:
        return not self.report.regressed


def loaded(load: Load = os.getloadavg, cores: int | None = None) -> tuple[bool, float, int]:
    """(1-minute load average above the core count, that load, the core count)."""
    cores = cores or os.cpu_count() or 1
    now = load()[0]
    return now > cores, now, cores


def run_gate(
    measure: Callable[[], dict[str, Any]],
    baseline: dict[str, Any],
    tolerance: float | None,
    names: tuple[str, str],
    load: Load = os.getloadavg,
    cores: int | None = None,
) -> GateOutcome:
    """Measure and compare; on a regression under load, measure once more and let that decide."""
    doc = measure()
    report = compare(doc, baseline, tolerance, names)
    if not report.regressed:
        return GateOutcome(report, doc)
    busy, now, n = loaded(load, cores)
    if not busy:
        return GateOutcome(report, doc)
    notes = [
        f"regressed while the machine was loaded (load average {now:.2f} > {n} cores): measuring once more; "
        f"first try: {'; '.join(r.describe() for r in report.regressed)}"
    ]
    doc = measure()
    report = compare(doc, baseline, tolerance, names)
    notes.append("the second measurement " + ("passed" if not report.regressed else "regressed too"))
    return GateOutcome(report, doc, notes)


def record_baseline(measure: Callable[[], dict[str, Any]], runs: int, multiple: float) -> dict[str, Any]:
    """`runs` measurements reduced to a measured baseline (median, run-to-run spread, multiple x spread)."""
    return make_baseline([measure() for _ in range(runs)], multiple)


@dataclass(frozen=True)
class GateSetup:
    """The gated pair, how it is timed, and where its files go (relative to the working directory)."""

    spec: PairSpec = PairSpec()
    timing: GateTiming = GateTiming()
    root: Path = Path("runs/gate")

    @property
    def pairs(self) -> Path:
        return self.root / "pairs"

    @property
    def bench(self) -> Path:
        return self.root / "bench.json"


GATE = GateSetup()
