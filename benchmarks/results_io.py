"""Write a benchmark's result as JSON and Markdown under benchmarks/results/, with its machine and command."""

from __future__ import annotations

import fcntl
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cplitool.deploy.bench.env import environment  # noqa: E402
from cplitool.toolchain.io import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def command() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def record(
    name: str, title: str, table: list[str], data: dict[str, Any], threads: int | None, folder: Path = RESULTS
) -> Path:
    """results/<name>.json (environment, command, data) and results/<name>.md (the table and the same header)."""
    env = environment(threads)
    doc = {"benchmark": name, "command": command(), "environment": env, **data}
    write_json(folder / f"{name}.json", doc)
    md = [
        f"# {title}",
        "",
        f"Command: `{doc['command']}`  ",
        f"Machine: {env['cpu']}, {env['logical_cpus']} logical CPUs, {threads} threads used, "
        f"load average {env['load_average']} (at the end), Python {env['python']}, "
        f"libraries {json.dumps(env['libraries'])}",
        "",
        *table,
        "",
    ]
    (folder / f"{name}.md").write_text("\n".join(md))
    return folder / f"{name}.json"


def locked_update(path: Path, update: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read the JSON at `path` (empty if absent), apply `update` and write the result atomically, all under an
    exclusive lock, so that several benchmark processes can share one cell cache. Returns what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = update(json.loads(path.read_text()) if path.exists() else {})
        write_json(path, doc)
    return doc
