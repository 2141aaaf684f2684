"""The dense model's accuracy, known in every run: a run that starts from a user's checkpoint has no
training stage to record it, so it is evaluated once and cached in <run>/accuracy.json under the file's
content hash and the data section's hash (a new checkpoint or other validation data evaluate again).

Every accuracy travels with its image count: 99.72% of 360 images is one digit from 100%.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cplitool.toolchain.io import sha256_file, write_json
from cplitool.toolchain.rundir import RunDir

CACHE = "accuracy.json"


def cache_key(path: Path, data_hash: str) -> str:
    return f"{sha256_file(path)}:{data_hash}"


def _read(run: RunDir) -> dict[str, Any]:
    try:
        doc = json.loads(run.file(CACHE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # absent or torn by hand: evaluating again is the cure
    return doc if isinstance(doc, dict) else {}


def cached_accuracy(run: RunDir, path: Path, data_hash: str) -> dict[str, Any] | None:
    """{top1, top5, images} cached for this file and data, or None."""
    found = _read(run).get(cache_key(path, data_hash))
    return found if isinstance(found, dict) and isinstance(found.get("top1"), int | float) else None


def store_accuracy(run: RunDir, path: Path, data_hash: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Cache an evaluation's top-1, top-5 and image count for this file and data; returns what was stored."""
    entry = {
        "file": path.name,
        "top1": metrics["top1"],
        "top5": metrics.get("top5"),
        "images": int(metrics.get("samples") or metrics.get("images") or 0),
    }
    write_json(run.file(CACHE), {**_read(run), cache_key(path, data_hash): entry})
    return entry


def recorded(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """{top1, images} from a stage's metrics (an evaluation's, or fit's best epoch), or None."""
    for m in (metrics, metrics.get("best") or {}):
        if isinstance(m.get("top1"), int | float):
            return {"top1": float(m["top1"]), "images": int(m.get("samples") or m.get("images") or 0)}
    return None
