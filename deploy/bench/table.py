"""bench.json as a terminal table: each latency is its median with the p10-p90 of its per-round medians
underneath, the pruned/dense ratio with the p10-p90 of its paired per-round ratios, and "unstable" beside
any row whose spread exceeds cplitool.deploy.bench.spread.SPREAD_LIMIT. Cells stack on lines so 80 columns hold it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from cplitool.deploy.bench.results import row_key
from cplitool.deploy.bench.spread import SPREAD_LIMIT, Interval, latency_interval, ratio_interval
from cplitool.toolchain.tables import Fitted, fitted


def number(v: float) -> str:
    """Four significant figures at most, never in exponent form: 0.0254, 0.969, 11.15, 102.4."""
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}" if v >= 10 else f"{v:.3f}" if v >= 0.1 else f"{v:.4f}"


def cell(iv: Interval) -> str:
    """The median, its p10-p90 underneath, and "unstable" on a third line when the spread is too wide."""
    return f"{number(iv.median)}\n{number(iv.low)}-{number(iv.high)}" + ("" if iv.stable else "\nunstable")


def target_label(row: dict[str, Any]) -> str:
    threads = f" {row['threads']} threads" if row.get("threads") else ""
    return f"{row['backend']} {row['device']} {row['variant']} {row['precision']}{threads}"


def grouped(doc: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, dict[str, Any]]]:
    """row key -> model -> measurement row, in the order bench.json lists them."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for m in doc.get("measurements", []):
        groups.setdefault(row_key(m), {})[m["model"]] = m
    return groups


def bench_table(doc: dict[str, Any]) -> Fitted:
    """One row per backend/device/precision/variant/batch: every model's latency, then the ratio."""
    models = list(doc.get("models") or {"dense": {}, "pruned": {}})
    ratios = {row_key(c): c for c in doc.get("comparisons", [])}
    rounds = max((len(m.get("round_medians_ms", [])) for m in doc.get("measurements", [])), default=0)
    sources = ", ".join(f"{m}: {v['source']}" for m, v in (doc.get("models") or {}).items() if v.get("source"))
    macs = {m: v.get("macs") for m, v in (doc.get("models") or {}).items()}
    macs_line = (
        f"; MACs ratio pruned/dense {macs['pruned'] / macs['dense']:.3f}"
        if macs.get("dense") and macs.get("pruned")
        else ""
    )
    table = Table(
        title=f"{doc['model']}: {' vs '.join(models)} latency (ms), median of all timed iterations",
        caption=(
            f"under each median: p10-p90 of the per-round medians ({rounds} interleaved rounds); under the ratio: "
            f"p10-p90 of the paired per-round ratios; unstable: a spread wider than {SPREAD_LIMIT:.0%} of its median"
            f"{macs_line}" + (f"\n{sources}" if sources else "")
        ),
        show_lines=True,
    )
    table.add_column("target")
    table.add_column("batch", justify="right")
    for m in models:
        table.add_column(f"{m} ms", justify="right")
    if ratios:
        table.add_column("pruned / dense", justify="right")
    for key, rows in grouped(doc).items():
        first = next(iter(rows.values()))
        cells = [cell(latency_interval(rows[m])) if m in rows else "n/a" for m in models]
        if ratios:
            c = ratios.get(key)
            cells.append(cell(ratio_interval(c)) if c else "n/a")
        table.add_row(target_label(first), str(first["batch"]), *cells)
    return fitted(table)
