"""`cplitool regress`: compare a bench.json with a baseline, like with like, and gate on latency.

Entries match on (backend, device, precision, variant, batch, threads). On a GPU the gated figure is each model's
median GPU compute time (host latency where the backend does not time compute); on the CPU it is the
pruned/dense ratio, which survives a different or busier machine where absolute times do not.

A baseline is either a bench.json or, better, a measured baseline (`make_baseline`): several bench files of
the same settings reduced to each figure's median, its run-to-run spread, and a tolerance that is a stated
multiple of that spread, so the gate is as tight as the machine's noise allows and no tighter.

Without a tolerance given and without a measured one, each figure's tolerance comes from the two files'
own spreads: SPREAD_Z x sqrt(baseline spread² + current spread²), the ~95% band of the difference of two
figures that noisy, and never below DEFAULT_TOLERANCE. A tolerance given that is smaller than that
combined spread is used, with a warning that it will raise false alarms.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cplitool.deploy.bench.results import latest
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.paths import MAX_JSON_BYTES, regular_input
from cplitool.toolchain.rundir import MANIFEST, RunDir

SCHEMA = "cplitool-bench/1"
BASELINE_SCHEMA = "cplitool-baseline/1"
DEFAULT_TOLERANCE = 0.05
DEFAULT_MULTIPLE = 5.0
SPREAD_Z = 2.0  # tolerance from two files' spreads: z x their combined spread
KEY_FIELDS = ("backend", "device", "precision", "variant", "batch", "threads")


@dataclass(frozen=True)
class Figure:
    """One gated figure: its value, its relative spread and, in a measured baseline, its tolerance."""

    metric: str
    value: float
    spread: float  # relative: run-to-run in a baseline, over rounds (CPU ratio) or iterations in a bench file
    batch: int
    threads: int | None
    tolerance: float | None = None
    invocations: tuple[str, ...] = ()  # the bench invocations that measured it (none in older files)


@dataclass
class Row:
    key: str
    metric: str
    baseline: float
    current: float
    tolerance: float
    baseline_spread: float
    current_spread: float
    tolerance_from: str = "given"  # given | measured baseline | spreads

    @property
    def spread(self) -> float:
        """The combined relative spread of the two figures."""
        return math.hypot(self.baseline_spread, self.current_spread)

    @property
    def limit(self) -> float:
        return self.baseline * (1 + self.tolerance)

    @property
    def change(self) -> float:
        return self.current / self.baseline - 1

    @property
    def regressed(self) -> bool:
        return self.current > self.limit

    def describe(self) -> str:
        """Both figures with their spreads and the limit, for a failure message."""
        return (
            f"{self.key}: {self.metric} now {self.current:.4f} ± {100 * self.current_spread:.1f}%, "
            f"baseline {self.baseline:.4f} ± {100 * self.baseline_spread:.1f}%, "
            f"limit {self.limit:.4f} (+{100 * self.tolerance:.1f}%)"
        )


@dataclass
class Report:
    rows: list[Row]
    missing: list[str]  # baseline entries the current file lacks

    @property
    def warnings(self) -> list[str]:
        """A given tolerance narrower than the figures' own combined spread: noise alone will cross it."""
        return [
            f"tolerance {100 * r.tolerance:.1f}% is smaller than the measured spread of {r.key} "
            f"({100 * r.spread:.1f}%: baseline ± {100 * r.baseline_spread:.1f}%, now ± {100 * r.current_spread:.1f}%), "
            f"so noise alone can fail it; leave --tolerance out to derive it from the spreads "
            f"({100 * spread_tolerance(r.baseline_spread, r.current_spread):.1f}% here)"
            for r in self.rows
            if r.tolerance_from == "given" and r.tolerance < r.spread
        ]

    @property
    def regressed(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]

    def failure(self) -> str:
        bad = self.regressed
        return f"latency regressed in {len(bad)} of {len(self.rows)} comparisons: " + "; ".join(
            r.describe() for r in bad
        )


def parse_tolerance(text: str | float) -> float:
    """'5%' or '0.05' -> 0.05; NaN, infinite or negative is a UsageError (a gate that cannot fail)."""
    raw = str(text).strip()
    expected = "expected a finite, non-negative percentage like 5% or fraction like 0.05"
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--tolerance {text!r}: {expected}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--tolerance {text!r}: {expected}")
    return value


def spread_tolerance(baseline_spread: float, current_spread: float) -> float:
    """The tolerance two figures' own spreads call for (module docstring)."""
    return max(DEFAULT_TOLERANCE, SPREAD_Z * math.hypot(baseline_spread, current_spread))


def regress_settings(current: Path, baseline: Path | None, tolerance: float | None) -> tuple[Path, float | None]:
    """Fill what the command line left out from the [regress] section of the run CURRENT belongs to.
    A tolerance left at None (or a recipe's 0) is the measured baseline's own, else from the spreads."""
    section = None
    if (current.parent / MANIFEST).is_file() and (baseline is None or tolerance is None):
        section = RunDir(current.parent).recipe().regress
    if baseline is None:
        if section is None or not section.baseline:
            raise UsageError(f"no baseline for {current}: pass --baseline or set regress.baseline in the run's recipe")
        baseline = Path(section.baseline)
    if tolerance is None and section is not None and section.tolerance:
        tolerance = section.tolerance
    return baseline, tolerance


def load_doc(path: str | Path, schemas: tuple[str, ...] = (SCHEMA, BASELINE_SCHEMA)) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: file not found (bench results come from `cplitool bench` or `cplitool gate`)")
    regular_input(path, "bench result")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise UsageError(f"{path}: {path.stat().st_size:,} bytes is not a bench result (at most {MAX_JSON_BYTES:,})")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a readable JSON file ({e})") from None
    except RecursionError:
        raise UsageError(f"{path}: not a bench result (JSON nested too deep to read)") from None
    if not isinstance(doc, dict) or doc.get("schema") not in schemas:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(
            f"{path}: expected a bench result with schema {' or '.join(map(repr, schemas))}, found {found!r}"
        )
    return doc


def load_bench(path: str | Path) -> dict[str, Any]:
    return load_doc(path, (SCHEMA,))


def key_of(entry: dict[str, Any]) -> str:
    """'onnxruntime cpu fp32 cpu b64 t1': backend, device, precision, variant, batch, threads (CPU only)."""
    threads = f" t{entry['threads']}" if entry.get("threads") else ""
    return f"{entry.get('backend')} {entry.get('device')} {entry.get('precision')} {entry.get('variant')} b{entry.get('batch')}{threads}"


RATIO_LABELS = {"latency": "pruned/dense latency ratio", "cpu": "pruned/dense CPU-time ratio"}


def gated(doc: dict[str, Any]) -> dict[str, Figure]:
    """key (with model for GPU entries) -> the figure the gate compares, from a bench file or a baseline."""
    if doc.get("schema") == BASELINE_SCHEMA:
        names = [f.name for f in fields(Figure)]
        figures = {}
        for k, v in doc["figures"].items():
            given: dict[str, Any] = {n: v[n] for n in names if n in v}
            figures[k] = Figure(**{**given, "invocations": tuple(given.get("invocations", ()))})
        return figures
    out: dict[str, Figure] = {}
    for c in doc.get("comparisons", []):
        if c.get("device") == "cpu":
            r = c["ratio"]
            label = RATIO_LABELS.get(r.get("metric", "latency"), f"pruned/dense {r.get('metric')} ratio")
            out[key_of(c)] = Figure(
                label, float(r["median"]), float(r.get("cv", 0.0)), c["batch"], c.get("threads"), None, invoked(c)
            )
    for m in doc.get("measurements", []):
        if m.get("device") != "cpu" and m.get("status", "ok") == "ok":
            metric = m.get("primary_metric", "latency")
            label = "median GPU compute (ms)" if metric == "compute" else "median host latency (ms)"
            stats = m[f"{metric}_ms"]
            out[f"{key_of(m)} {m['model']}"] = Figure(
                label,
                float(stats["median"]),
                float(stats.get("cv", 0.0)),
                m["batch"],
                m.get("threads"),
                None,
                invoked(m),
            )
    return out


def invoked(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["invocation"],) if row.get("invocation") else ()


def same_measurement(
    cur: dict[str, Figure], base: dict[str, Figure], keys: list[str], names: tuple[str, str]
) -> str | None:
    """Why the comparison is void when a row would be compared with itself: the same file, or a figure the
    same bench invocation measured for both files (a copied bench.json, or a baseline made from this one)."""
    if Path(names[0]).resolve() == Path(names[1]).resolve() and Path(names[0]).is_file():
        return f"{names[0]} is compared with itself: every row would pass at +0.0%; compare it with a baseline"
    shared = [k for k in keys if set(cur[k].invocations) & set(base[k].invocations)]
    if shared:
        inv = sorted(set(cur[shared[0]].invocations) & set(base[shared[0]].invocations))[0]
        return (
            f"{names[0]} and {names[1]} hold the same measurement of {shared[0]} (bench invocation {inv}"
            f"{f', and {len(shared) - 1} more' if len(shared) > 1 else ''}): a row compared with itself always "
            "passes; bench again for the current figures"
        )
    return None


def devices(doc: dict[str, Any]) -> set[str]:
    if doc.get("schema") == BASELINE_SCHEMA:
        return set(doc["devices"])
    return {str(c.get("device")) for c in doc.get("measurements", [])}


def taken_with(figures: dict[str, Figure]) -> str:
    """'batch 16 with 1 thread' for the settings the figures were measured at."""
    settings = sorted({(f.batch, f.threads) for f in figures.values()}, key=str)
    return " and ".join(f"batch {b}" + (f" with {t} thread{'s' if t != 1 else ''}" if t else "") for b, t in settings)


def flags_for(figures: dict[str, Figure]) -> str:
    """The bench flags that reproduce the figures' batch and threads."""
    batches = sorted({f.batch for f in figures.values()})
    threads = sorted({f.threads for f in figures.values() if f.threads})
    return " ".join([*(f"--batch {b}" for b in batches), *(f"--threads {t}" for t in threads)])


def mismatch(cur: dict[str, Figure], base: dict[str, Figure], names: tuple[str, str]) -> str | None:
    """Why nothing can be compared when the batch, threads or metric differ; None when something else differs."""
    current, baseline = names
    if {(f.batch, f.threads) for f in cur.values()} != {(f.batch, f.threads) for f in base.values()}:
        return (
            f"cannot compare {current} (batch and threads: {taken_with(cur)}) with {baseline} ({taken_with(base)}): "
            f"latency depends on both; measure again with `cplitool bench RUN {flags_for(base)}`"
            f" (`cplitool gate` measures with the gate baseline's settings)"
        )
    metrics = ({f.metric for f in cur.values()}, {f.metric for f in base.values()})
    if metrics[0] != metrics[1]:
        return (
            f"cannot compare {current} ({', '.join(sorted(metrics[0]))}) with {baseline} "
            f"({', '.join(sorted(metrics[1]))}): the gate baseline's CPU-time ratio comes from `cplitool gate`"
        )
    return None


def compare(
    current: dict[str, Any],
    baseline: dict[str, Any],
    tolerance: float | None,
    names: tuple[str, str] = ("the current file", "the baseline"),
) -> Report:
    """Raises UsageError (exit 2) when nothing in the two files can be compared. A None tolerance takes each
    figure's measured tolerance from a measured baseline, else the one the two figures' spreads call for."""
    cur, base = gated(latest(current)[0]), gated(baseline)  # "now" is the current file's latest bench
    if not base:
        raise UsageError(f"{names[1]} holds no measurements to compare against")
    if not devices(current) & devices(baseline):
        raise UsageError(
            f"device mismatch: {names[1]} measured on {', '.join(sorted(devices(baseline)))}, "
            f"{names[0]} on {', '.join(sorted(devices(current))) or 'nothing'}; use the baseline for this device"
        )
    common = [k for k in base if k in cur and cur[k].metric == base[k].metric]
    if not common:
        raise UsageError(
            mismatch(cur, base, names)
            or "no measurement in common (backend, device, precision, variant, batch, threads); baseline has: "
            + "; ".join(sorted(base))
        )
    void = same_measurement(cur, base, common, names)
    if void:
        raise UsageError(f"cannot compare: {void}")
    rows = []
    for k in common:
        b, c = base[k], cur[k]
        if tolerance is not None:
            tol, source = tolerance, "given"
        elif b.tolerance is not None:
            tol, source = b.tolerance, "measured baseline"
        else:
            tol, source = spread_tolerance(b.spread, c.spread), "spreads"
        rows.append(Row(k, b.metric, b.value, c.value, tol, b.spread, c.spread, source))
    return Report(rows, [k for k in base if k not in common])


def regress(current: str | Path, baseline: str | Path, tolerance: float | None) -> Report:
    return compare(load_bench(current), load_doc(baseline), tolerance, (str(current), str(baseline)))


def make_baseline(docs: list[dict[str, Any]], multiple: float = DEFAULT_MULTIPLE) -> dict[str, Any]:
    """A measured baseline from several bench documents of one setup: per figure the median over the runs,
    the run-to-run spread (sample standard deviation over the median) and tolerance = multiple x spread.
    Machine, load averages, threads and batch are kept; paths are not."""
    if len(docs) < 2:
        raise UsageError(f"a measured baseline needs at least 2 bench files to measure a spread, got {len(docs)}")
    per_doc = [gated(d) for d in docs]
    keys = [k for k in per_doc[0] if all(k in g for g in per_doc)]
    if not keys:
        raise UsageError("the bench files have no measurement in common: take them with the same settings")
    figures = {}
    for k in keys:
        values = [g[k].value for g in per_doc]
        mid = statistics.median(values)
        spread = statistics.stdev(values) / mid
        first = per_doc[0][k]
        figures[k] = {
            "metric": first.metric,
            "value": mid,
            "spread": spread,
            "batch": first.batch,
            "threads": first.threads,
            "tolerance": multiple * spread,
            "runs": values,
            "invocations": [i for g in per_doc for i in g[k].invocations],
        }
    env = docs[0].get("environment", {})
    return {
        "schema": BASELINE_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tolerance_rule": f"tolerance = {multiple:g} x spread; spread = sample std of the runs' values / their median",
        "multiple": multiple,
        "runs": len(docs),
        "machine": {k: env.get(k) for k in ("cpu", "logical_cpus", "platform", "python", "gpu", "libraries")},
        "load_average": [d.get("environment", {}).get("load_average") for d in docs],
        "model": docs[0].get("model"),
        "models": {m: {"macs": v.get("macs")} for m, v in docs[0].get("models", {}).items()},
        "settings": docs[0].get("settings", {}),
        "devices": sorted(devices(docs[0])),
        "figures": figures,
    }
