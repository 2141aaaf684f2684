"""Run the pipeline's stages in order, skipping each one whose result is still valid.

A stage is up to date when the manifest holds a finished entry for it whose artifact is unchanged on
disk, and the pipeline's own record (manifest["pipeline"][stage]) says it was made from the same recipe
sections and the same upstream artifacts (their sha256) as now. Stages record their own manifest entries;
the runner only adds its record after a stage returns, so a stage interrupted by Ctrl-C, a kill or an
error is run again next time (and train/finetune continue from their per-epoch state files).

Stage functions are imported only when they run: a stage whose module does not exist is reported as
"not available" and the stages that need it as "blocked"; nothing is faked.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cplitool.toolchain import interrupts
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.rundir import RunDir

Invoke = Callable[[Callable[..., Any], Recipe, RunDir, bool], Any]  # (entry point, recipe, run, redo)


@dataclass(frozen=True)
class StageSpec:
    name: str
    entry: str  # "module:function", imported when the stage runs
    sections: tuple[str, ...]  # recipe sections whose change makes the stage stale
    inputs: tuple[str, ...] = ()  # upstream stages whose artifacts it reads (their hashes join its key)
    needs: tuple[str, ...] = ()  # upstream stages that must be done before it can run
    invoke: Invoke = lambda fn, recipe, run, redo: fn(recipe)
    skip_reason: Callable[[Recipe], str | None] = lambda recipe: None  # a reason not to run it at all


@dataclass
class Outcome:
    stage: str
    status: str  # ran, up to date, skipped, not available, blocked
    seconds: float = 0.0
    detail: str = ""
    result: Any = field(default=None, repr=False)


def load_entry(entry: str) -> Callable[..., Any] | None:
    """The stage function, or None when its module is not part of this installation (yet)."""
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            return None
        raise  # the module exists but one of its own imports is missing: a real error
    fn = getattr(module, attr, None)
    return fn if callable(fn) else None


def input_digest(recipe: Recipe, run: RunDir, stage: str) -> str:
    """What identifies an upstream stage's output: the user's dense checkpoint, else its manifest entry."""
    if stage == "train" and recipe.model.checkpoint:
        return "checkpoint:" + sha256_file(recipe.model.checkpoint)
    entry = run.stage(stage) or {}
    if entry.get("status") != "done":
        return "absent"
    return f"{entry.get('sha256')}:{entry.get('section_hash')}"


def stage_key(recipe: Recipe, run: RunDir, spec: StageSpec) -> str:
    parts = [recipe.section_hash(*spec.sections)] + [f"{s}={input_digest(recipe, run, s)}" for s in spec.inputs]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def is_up_to_date(run: RunDir, stage: str, key: str) -> bool:
    manifest = run.read()
    record = manifest.get("pipeline", {}).get(stage)
    entry = manifest["stages"].get(stage)
    if not record or not entry or record.get("key") != key:
        return False
    same_entry = record.get("sha256") == entry.get("sha256") and record.get("section_hash") == entry.get("section_hash")
    return same_entry and run.up_to_date(stage, entry["section_hash"])


def remember(run: RunDir, stage: str, key: str, seconds: float) -> None:
    """Note which inputs the stage's current manifest entry was made from (after it finished)."""

    def note(manifest: dict[str, Any]) -> None:
        entry = manifest["stages"].get(stage) or {}
        manifest.setdefault("pipeline", {})[stage] = {
            "key": key,
            "sha256": entry.get("sha256"),
            "section_hash": entry.get("section_hash"),
            "seconds": round(seconds, 3),
        }

    run.update(note)


def stages_to_redo(stages: Sequence[StageSpec], start: str | None, force: bool) -> set[str]:
    names = [s.name for s in stages]
    if start is not None and start not in names:
        raise UsageError(f"--from {start}: expected one of {', '.join(names)}")
    if force:
        return set(names)
    return set(names[names.index(start) :]) if start else set()


def run_pipeline(
    recipe: Recipe,
    stages: Sequence[StageSpec],
    start: str | None = None,
    force: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run `stages` in order; `start` (--from) and `force` redo stages even when they are up to date."""
    redo = stages_to_redo(stages, start, force)
    run = RunDir.open(recipe)
    outcomes: list[Outcome] = []
    settled: set[str] = set()  # stages whose result downstream stages may use
    for spec in stages:
        outcome = run_one(recipe, run, spec, spec.name in redo, settled)
        if outcome.status in ("ran", "up to date", "skipped"):
            settled.add(spec.name)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    if settled:
        run.begin()
    return outcomes


def run_one(recipe: Recipe, run: RunDir, spec: StageSpec, redo: bool, settled: set[str]) -> Outcome:
    reason = spec.skip_reason(recipe)
    if reason:
        return Outcome(spec.name, "skipped", detail=reason)
    missing = [n for n in spec.needs if n not in settled]
    if missing:
        return Outcome(spec.name, "blocked", detail=f"needs {', '.join(missing)}")
    key = stage_key(recipe, run, spec)
    if not redo and is_up_to_date(run, spec.name, key):
        return Outcome(spec.name, "up to date", detail=str(run.artifact(spec.name)))
    fn = load_entry(spec.entry)
    if fn is None:
        return Outcome(spec.name, "not available", detail=f"{spec.entry} is not installed")
    console.print(f"[bold]stage {spec.name}[/bold]", highlight=False)
    run.begin()
    start = time.perf_counter()
    try:
        with interrupts.stage(f"stage {spec.name}"):
            result = spec.invoke(fn, recipe, run, redo)
    except (KeyboardInterrupt, interrupts.Interrupted):
        console.print(f"[yellow]interrupted in stage {spec.name}[/yellow]: the next `cplitool run` resumes there")
        raise
    except Exception:
        console.print(f"[red]stage {spec.name} failed[/red]", highlight=False)
        raise
    seconds = time.perf_counter() - start
    remember(run, spec.name, key, seconds)
    made = run.artifact(spec.name) or (result if isinstance(result, Path) else "")
    return Outcome(spec.name, "ran", seconds, str(made), result)
