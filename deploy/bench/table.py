"""bench.json as a terminal table: each latency is its median with the p10-p90 of its per-round medians
and its throughput (images/s at the median) underneath, the pruned/dense ratio with the p10-p90 of its
paired per-round ratios, and "unstable" beside any row whose spread exceeds
cplitool.deploy.bench.spread.SPREAD_LIMIT. Cells stack on lines so 80 columns hold it."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from cplitool.deploy.bench.results import row_key
from cplitool.deploy.bench.spread import SPREAD_LIMIT, Interval, latency_interval, ratio_interval
from cplitool.toolchain.tables import Fitted, fitted


def number(v: float) -> str:
    """Four significant figures at most, never in exponent form: 0.0254, 0.969, 11.15, 102.4."""
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}" if v >= 10 else f"{v:.3f}" if v >= 0.1 else f"{v:.4f}"


def throughput(batch: int, median_ms: float) -> str:
    """Images per second at the median latency, "12,345/s": one word, so a narrow cell never splits it
    (trtexec reports throughput first; the tables put it under each latency)."""
    return f"{batch * 1000 / median_ms:,.0f}/s" if median_ms > 0 else "n/a"


def cell(iv: Interval, batch: int | None = None) -> str:
    """The median, its p10-p90 underneath, the throughput at the median when `batch` is given (a latency,
    not a ratio), and "unstable" on the last line when the spread is too wide."""
    rate = f"\n{throughput(batch, iv.median)}" if batch else ""
    return f"{number(iv.median)}\n{number(iv.low)}-{number(iv.high)}{rate}" + ("" if iv.stable else "\nunstable")


def target_name(row: dict[str, Any]) -> str:
    """ "onnxruntime cpu fp32", "torch cuda:NVIDIA H200 fp16 cudagraph": backend, device, precision, then the
    variant where it says more than the device; the one name tables and plots share."""
    variant = row.get("variant", "")
    extra = "" if not variant or variant in row["device"] else f" {variant}"
    return f"{row['backend']} {row['device']} {row['precision']}{extra}"


def target_label(row: dict[str, Any]) -> str:
    threads = f" {row['threads']} threads" if row.get("threads") else ""
    return f"{target_name(row)}{threads}"


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
            f"under each median: p10-p90 of the per-round medians ({rounds} interleaved rounds) and the throughput "
            "at the median in images/s (batch x 1000 / ms); under the ratio: "
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
        cells = [cell(latency_interval(rows[m]), int(first["batch"])) if m in rows else "n/a" for m in models]
        if ratios:
            c = ratios.get(key)
            cells.append(cell(ratio_interval(c)) if c else "n/a")
        table.add_row(target_label(first), str(first["batch"]), *cells)
    return fitted(table)
