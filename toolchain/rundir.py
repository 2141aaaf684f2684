"""Run directories: one per recipe, with a JSON manifest of every stage's artifact, hashes and metrics.

`runs/latest` (a symlink) marks the run last used, so `cplitool export --trt` or `cplitool bench`
work without naming the recipe again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from toolchain.errors import CplitoolError, UsageError
from toolchain.io import sha256_file, write_json
from toolchain.recipe import Recipe, load_recipe

MANIFEST = "manifest.json"


class RunDir:
    """The run directory of one recipe and its manifest (stages -> artifact, sha256, section hash, metrics)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @classmethod
    def for_recipe(cls, recipe: Recipe) -> RunDir:
        """Create (or reopen) the recipe's run directory, record the recipe, and mark it as latest."""
        run = cls(recipe.run_dir)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CplitoolError(f"cannot create run directory {run.path}: {e.strerror or e}") from None
        if not os.access(run.path, os.W_OK):
            raise CplitoolError(f"run directory {run.path} is not writable")
        manifest = run.read()
        manifest["recipe"] = {"source": str(recipe.source), "resolved": recipe.to_dict()}
        run.write(manifest)
        run.mark_latest()
        return run

    @classmethod
    def resolve(cls, ref: str | Path | None) -> RunDir:
        """A run from a run directory, a recipe file, or (None) runs/latest under the current directory."""
        if ref is None:
            latest = Path.cwd() / "runs" / "latest"
            if not latest.exists():
                raise UsageError("no run given and runs/latest does not exist: pass a recipe or a run directory")
            return cls(latest.resolve())
        p = Path(ref)
        if p.is_file() and p.suffix == ".toml":
            return cls.for_recipe(load_recipe(p))
        if (p / MANIFEST).is_file():
            return cls(p)
        raise UsageError(f"{ref}: neither a recipe (.toml) nor a run directory with {MANIFEST}")

    def recipe(self) -> Recipe:
        """The recipe this run was made from (re-validated, so edits to it are seen)."""
        source = self.read().get("recipe", {}).get("source")
        if not source:
            raise UsageError(f"{self.path / MANIFEST}: records no recipe")
        return load_recipe(source)

    def mark_latest(self) -> None:
        """Point runs/latest under the current directory at this run (relative, so the tree can move)."""
        link = Path.cwd() / "runs" / "latest"
        if link.parent.resolve() == self.path or link.resolve() == self.path:
            return
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(f".latest.{os.getpid()}")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.path.relpath(self.path, link.parent.resolve()), target_is_directory=True)
            os.replace(tmp, link)
        except OSError as e:
            raise CplitoolError(f"cannot mark {self.path} as runs/latest: {e.strerror or e}") from None

    def file(self, name: str) -> Path:
        return self.path / name

    def read(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            return {"schema": 1, "stages": {}}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CplitoolError(f"{path}: unreadable manifest ({e})") from None

    def write(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / MANIFEST, manifest)

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.read()["stages"].get(name)

    def record(
        self,
        stage: str,
        artifact: Path | None,
        section_hash: str,
        metrics: dict[str, Any],
        status: str = "done",
        **extra: Any,
    ) -> dict[str, Any]:
        """Record a stage's outcome; the manifest is rewritten atomically, so it is never half-updated."""
        entry: dict[str, Any] = {
            "status": status,
            "artifact": str(artifact.relative_to(self.path))
            if artifact and artifact.is_relative_to(self.path)
            else (str(artifact) if artifact else None),
            "sha256": sha256_file(artifact) if artifact and artifact.is_file() else None,
            "section_hash": section_hash,
            "metrics": metrics,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra,
        }
        manifest = self.read()
        manifest["stages"][stage] = entry
        self.write(manifest)
        return entry

    def artifact(self, stage: str) -> Path | None:
        """The artifact a finished stage left, or None when the stage has not run or failed."""
        entry = self.stage(stage)
        if not entry or entry.get("status") != "done" or not entry.get("artifact"):
            return None
        path = self.path / entry["artifact"]
        return path if path.exists() else None

    def up_to_date(self, stage: str, section_hash: str) -> bool:
        """True when the stage finished with this section hash and its artifact is unchanged on disk."""
        entry = self.stage(stage)
        path = self.artifact(stage)
        if entry is None or path is None or entry.get("section_hash") != section_hash:
            return False
        return path.is_dir() or entry.get("sha256") == sha256_file(path)
