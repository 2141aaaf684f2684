"""`cplitool regress`: compare a bench.json with a baseline, like with like, and gate on latency.

Entries match on (backend, device, precision, variant, batch, threads). On a GPU the gated figure is each model's
median GPU compute time (host latency where the backend does not time compute); on the CPU it is the
pruned/dense ratio, which survives a different or busier machine where absolute times do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.errors import UsageError
from toolchain.rundir import MANIFEST, RunDir

SCHEMA = "cplitool-bench/1"
DEFAULT_TOLERANCE = 0.05


@dataclass
class Row:
    key: str
    metric: str
    baseline: float
    current: float
    limit: float

    @property
    def change(self) -> float:
        return self.current / self.baseline - 1

    @property
    def regressed(self) -> bool:
        return self.current > self.limit


@dataclass
class Report:
    rows: list[Row]
    missing: list[str]  # baseline entries the current file lacks
    tolerance: float

    @property
    def regressed(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]


def parse_tolerance(text: str | float) -> float:
    """'5%' or '0.05' -> 0.05."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--tolerance {text!r}: expected a percentage like 5% or a fraction like 0.05") from None
    if value < 0:
        raise UsageError(f"--tolerance {text!r}: must not be negative")
    return value


def regress_settings(current: Path, baseline: Path | None, tolerance: float | None) -> tuple[Path, float]:
    """Fill what the command line left out from the [regress] section of the run CURRENT belongs to."""
    section = None
    if (current.parent / MANIFEST).is_file() and (baseline is None or tolerance is None):
        section = RunDir(current.parent).recipe().regress
    if baseline is None:
        if section is None or not section.baseline:
            raise UsageError(f"no baseline for {current}: pass --baseline or set regress.baseline in the run's recipe")
        baseline = Path(section.baseline)
    if tolerance is None:
        tolerance = section.tolerance if section is not None else DEFAULT_TOLERANCE
    return baseline, tolerance


def load_bench(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found (bench results come from `cplitool bench`)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{path}: expected a bench result with schema {SCHEMA!r}, found {found!r}")
    return doc


def key_of(entry: dict[str, Any]) -> str:
    """'onnxruntime cpu fp32 cpu b64 t1': backend, device, precision, variant, batch, threads (CPU only)."""
    threads = f" t{entry['threads']}" if entry.get("threads") else ""
    return f"{entry.get('backend')} {entry.get('device')} {entry.get('precision')} {entry.get('variant')} b{entry.get('batch')}{threads}"


def gated(doc: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """key (with model for GPU entries) -> (metric name, value) of what the gate compares."""
    out: dict[str, tuple[str, float]] = {}
    for c in doc.get("comparisons", []):
        if c.get("device") == "cpu":
            out[key_of(c)] = ("pruned/dense latency ratio", float(c["ratio"]["median"]))
    for m in doc.get("measurements", []):
        if m.get("device") != "cpu" and m.get("status", "ok") == "ok":
            metric = m.get("primary_metric", "latency")
            label = "median GPU compute (ms)" if metric == "compute" else "median host latency (ms)"
            out[f"{key_of(m)} {m['model']}"] = (label, float(m[f"{metric}_ms"]["median"]))
    return out


def devices(doc: dict[str, Any]) -> set[str]:
    return {str(c.get("device")) for c in doc.get("measurements", [])}


def compare(current: dict[str, Any], baseline: dict[str, Any], tolerance: float) -> Report:
    """Raises UsageError (exit 2) when nothing in the two files can be compared."""
    cur, base = gated(current), gated(baseline)
    if not base:
        raise UsageError("the baseline holds no measurements to compare against")
    if not devices(current) & devices(baseline):
        raise UsageError(
            f"device mismatch: baseline measured on {', '.join(sorted(devices(baseline)))}, "
            f"current on {', '.join(sorted(devices(current))) or 'nothing'}; use the baseline for this device"
        )
    common = [k for k in base if k in cur]
    if not common:
        raise UsageError(
            "no measurement in common (backend, device, precision, variant, batch, threads); baseline has: "
            + "; ".join(sorted(base))
        )
    rows = [Row(k, base[k][0], base[k][1], cur[k][1], base[k][1] * (1 + tolerance)) for k in common]
    return Report(rows, [k for k in base if k not in cur], tolerance)


def regress(current: str | Path, baseline: str | Path, tolerance: float) -> Report:
    return compare(load_bench(current), load_bench(baseline), tolerance)
