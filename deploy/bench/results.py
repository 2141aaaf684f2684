"""bench.json rows: what identifies one, which invocation made it, and merging a new bench into the file.

A new bench replaces the rows it measured again (same backend, device, precision, variant, batch and
threads) and keeps the others, so `bench --batch 64` after a bench of batches 1 and 64 keeps batch 1.
Rows measured on other model files (different SHA-256: re-pruned, re-trained) are dropped, never mixed.
Every row carries the time it was measured and the id of the invocation that measured it; the file's
`invocation` is the latest one and `invocations` lists the command, time and load average of each one
whose rows it holds. Tables, the report and `regress` read the latest invocation's rows (`latest`): the
kept ones predate the file's environment block and were measured under another load.
"""

from __future__ import annotations

import json
import shlex
import sys
import uuid
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


def command_line() -> str:
    """How this process was invoked, as a shell would take it: 'cplitool bench runs/x --batch 64'."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def stamp(doc: dict[str, Any]) -> dict[str, Any]:
    """Give a new bench document its invocation (id, command, time, load) and tag each of its rows with it."""
    load = (doc.get("environment") or {}).get("load_average")
    inv = {"id": uuid.uuid4().hex[:12], "command": command_line(), "created": doc.get("created"), "load_average": load}
    for name in ROWS:
        for row in doc.get(name, []):
            row.setdefault("measured_at", doc.get("created"))
            row.setdefault("invocation", inv["id"])
    return {**doc, "invocation": inv, "invocations": [inv]}


def latest(doc: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The document with only the rows its latest invocation measured, and how many others it holds. A file
    from before invocations were recorded is returned whole."""
    inv = (doc.get("invocation") or {}).get("id")
    if inv is None:
        return doc, 0
    rows = {name: [r for r in doc.get(name, []) if r.get("invocation") == inv] for name in ROWS}
    hidden = sum(len(doc.get(name, [])) - len(rows[name]) for name in ROWS)
    return {**doc, **rows}, hidden


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`new` (stamped) with the rows of `old` it did not measure again; returns the document and how many
    were kept."""
    if old is None or not mergeable(old, new):
        return new, 0
    remeasured = {row_key(r) for name in ROWS for r in new.get(name, [])}
    merged = dict(new)
    kept = 0
    for name in ROWS:
        older = [r for r in old.get(name, []) if row_key(r) not in remeasured]
        kept += len(older)
        merged[name] = sorted(older + new.get(name, []), key=order)
    used = {r.get("invocation") for name in ROWS for r in merged[name]}
    earlier = [i for i in old.get("invocations", []) if i.get("id") in used and i.get("id") != new["invocation"]["id"]]
    merged["invocations"] = [*earlier, new["invocation"]]
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
