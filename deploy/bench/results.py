"""bench.json rows: what identifies one, and merging a new bench into the file already there.

A new bench replaces the rows it measured again (same backend, device, precision, variant, batch and
threads) and keeps the others, so `bench --batch 64` after a bench of batches 1 and 64 keeps batch 1.
Rows measured on other model files (different SHA-256: re-pruned, re-trained) are dropped, never mixed.
Every row carries the time it was measured, since the kept ones predate the file's environment block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEY = ("backend", "device", "precision", "variant", "batch", "threads")
ROWS = ("measurements", "comparisons")


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a bench.json row apart from its model: a later measurement of it replaces it."""
    return tuple(row.get(k) for k in KEY)


def model_hashes(doc: dict[str, Any]) -> dict[str, Any]:
    return {m: v.get("sha256") for m, v in (doc.get("models") or {}).items()}


def mergeable(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Same schema and the very same model files (by SHA-256) behind both."""
    hashes = model_hashes(new)
    return old.get("schema") == new.get("schema") and None not in hashes.values() and model_hashes(old) == hashes


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`new` with the rows of `old` it did not measure again; returns the document and how many were kept."""
    for name in ROWS:
        for row in new.get(name, []):
            row.setdefault("measured_at", new.get("created"))
    if old is None or not mergeable(old, new):
        return new, 0
    remeasured = {row_key(r) for name in ROWS for r in new.get(name, [])}
    merged = dict(new)
    kept = 0
    for name in ROWS:
        older = [r for r in old.get(name, []) if row_key(r) not in remeasured]
        kept += len(older)
        merged[name] = sorted(older + new.get(name, []), key=order)
    return merged, kept


def order(row: dict[str, Any]) -> tuple[Any, ...]:
    """Rows sorted by target, then batch as a number, then threads and model."""
    *target, batch, threads = row_key(row)
    return (*(str(v) for v in target), int(batch or 0), int(threads or 0), str(row.get("model", "")))


def read_previous(path: Path) -> dict[str, Any] | None:
    """The bench.json already at `path`, or None when there is none or it cannot be read (it is replaced)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None
