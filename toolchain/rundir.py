"""Run directories: one per recipe, with a JSON manifest of every stage's artifact, hashes and metrics.

`runs/latest` (a symlink) marks the run last used, so `cplitool export --trt` or `cplitool bench`
work without naming the recipe again.

A command that writes holds the run directory's advisory lock (`<run dir>/.lock`, fcntl.flock) until
it ends, so two commands never rewrite one run's artifacts at once; manifest updates are
read-modify-write under that lock, so none is lost. Nothing is written into a run before its first stage
starts real work: a command that fails on bad input leaves no run directory, and one that fails later or
is interrupted (Ctrl-C, SIGTERM) puts `runs/latest` back where it was (restore_latest, from the CLI's main).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.io import remove_stale_temps, sha256_file, write_json
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe import Recipe, load_recipe

MANIFEST = "manifest.json"
LOCK = ".lock"
PINNED_RECIPE = "recipe.toml"  # `run --set/--smoke` writes the resolved recipe here


@dataclass
class _Held:
    path: Path
    fd: int
    created: list[Path]  # folders this command made, deepest first (removed again if left empty)


# Locks this process holds, by the directory's (device, inode): a moved or symlinked run stays one run.
_HELD: dict[tuple[int, int], _Held] = {}
_WAIT = [True]  # --no-wait sets False: a busy run directory is then an error at once
# runs/latest links this command repointed -> their target before it (None: there was no link), so a
# command that fails or is interrupted can put them back (restore_latest).
_LATEST_BEFORE: dict[Path, str | None] = {}


def set_wait(wait: bool) -> None:
    _WAIT[0] = wait


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = os.pread(fd, 32, 0).decode().strip()
        if pid:
            return f" (pid {pid})"
    return ""


def _lock(path: Path, wait: bool, quiet: bool = False) -> int:
    """Open <path>/.lock and take its exclusive flock; returns the descriptor."""
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise CplitoolError(f"cannot write {path / LOCK}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        busy = f"run directory {path} is in use by another cplitool command{_holder(fd)}"
        if not wait:
            os.close(fd)
            raise CplitoolError(f"{busy}; try again when it ends (or leave out --no-wait to wait)") from None
        if not quiet:
            console.print(f"[yellow]waiting:[/yellow] {busy}", highlight=False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _is_worker_rank() -> bool:
    """torchrun ranks other than 0 write nothing; rank 0 holds the lock for all of them."""
    return os.environ.get("RANK", "0") not in ("", "0")


def release_all(failed: bool = False) -> None:
    """Release every run lock this process holds (end of a command); remove directories this command
    created but left without any file but the lock (after a failure: but its own bookkeeping, the lock,
    the manifest and the pinned recipe, so that a failed command leaves no trace; real work such as a
    training state file keeps the directory)."""
    bookkeeping = {LOCK, MANIFEST, PINNED_RECIPE} if failed else {LOCK}
    for key, held in list(_HELD.items()):
        with contextlib.suppress(OSError):
            if held.created and {p.name for p in held.path.iterdir()} <= bookkeeping:
                for name in bookkeeping:
                    (held.path / name).unlink(missing_ok=True)
                for folder in held.created:
                    folder.rmdir()  # stops at the first that holds something else
        with contextlib.suppress(OSError):
            os.close(held.fd)
        del _HELD[key]
    _LATEST_BEFORE.clear()


def restore_latest() -> None:
    """Point every runs/latest this command moved back where it was: a failed command changes nothing."""
    for link, target in _LATEST_BEFORE.items():
        with contextlib.suppress(OSError):
            if target is None:
                link.unlink(missing_ok=True)
            else:
                _point(link, target)
    _LATEST_BEFORE.clear()


def _point(link: Path, target: str) -> None:
    """Make `link` a symlink to `target` in one rename (readers never see it missing)."""
    tmp = link.with_name(f".latest.{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _holds(path: Path) -> bool:
    return _identity(path) in _HELD


class RunDir:
    """The run directory of one recipe and its manifest (stages -> artifact, sha256, section hash, metrics)."""

    def __init__(self, path: str | Path, recipe: Recipe | None = None) -> None:
        self.path = Path(path).resolve()
        self._recipe = recipe  # recorded in the manifest when work starts (begin)
        self._begun = False

    @classmethod
    def open(cls, recipe: Recipe) -> RunDir:
        """The recipe's run directory, locked for this command; writes nothing yet (see begin)."""
        run = cls(recipe.run_dir, recipe)
        run.acquire()
        return run

    @classmethod
    def for_recipe(cls, recipe: Recipe) -> RunDir:
        """Open the recipe's run directory, record the recipe, and mark it as latest."""
        run = cls.open(recipe)
        run.begin()
        return run

    def acquire(self) -> None:
        """Hold the run's lock until the command ends (release_all); reentrant within a process.
        Temporary files a killed command left behind are removed once the lock is ours."""
        if _holds(self.path) or _is_worker_rank():
            return
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CplitoolError(f"cannot create run directory {self.path}: {e.strerror or e}") from None
        fd = _lock(self.path, _WAIT[0])
        st = self.path.stat()
        _HELD[(st.st_dev, st.st_ino)] = _Held(self.path, fd, created)
        for p in remove_stale_temps(self.path):
            console.print(f"removed {p.name}, left by an interrupted command", highlight=False)

    def begin(self) -> None:
        """Real work starts: record the recipe in the manifest and point runs/latest here (once)."""
        if self._begun or _is_worker_rank():
            return
        self._begun = True
        if self._recipe is not None:
            recipe = self._recipe
            self.update(lambda m: m.__setitem__("recipe", {"source": str(recipe.source), "resolved": recipe.to_dict()}))
        self.mark_latest()

    @classmethod
    def resolve(cls, ref: str | Path | None) -> RunDir:
        """A run (locked for this command) from a run directory, a recipe file, or (None) runs/latest."""
        if ref is None:
            latest = Path.cwd() / "runs" / "latest"
            if not latest.exists():
                raise UsageError(
                    "no run given and runs/latest does not exist: pass a recipe or a run directory "
                    "(`cplitool run RECIPE` makes a run; `cplitool init NAME` writes a starting recipe)"
                )
            run = cls(latest.resolve())
        else:
            p = Path(ref)
            if p.is_file() and p.suffix == ".toml":
                return cls.open(load_recipe(p))
            if not (p / MANIFEST).is_file():
                raise UsageError(f"{ref}: neither a recipe (.toml) nor a run directory with {MANIFEST}")
            run = cls(p)
        run.acquire()
        return run

    def recipe(self) -> Recipe:
        """The recipe this run was made from (re-validated, so edits to it are seen)."""
        source = self.read().get("recipe", {}).get("source")
        if not source and self._recipe is not None:  # opened from a recipe, nothing recorded yet
            source = self._recipe.source
        if not source:
            raise UsageError(f"{self.path / MANIFEST}: records no recipe")
        return load_recipe(source)

    def mark_latest(self) -> None:
        """Point runs/latest under the current directory at this run (relative, so the tree can move).
        A failure is a warning: the work itself is done and recorded."""
        link = Path.cwd() / "runs" / "latest"
        try:
            if link.parent.resolve() == self.path or link.resolve() == self.path:
                return
            link.parent.mkdir(parents=True, exist_ok=True)
            before = os.readlink(link) if link.is_symlink() else None
            _point(link, os.path.relpath(self.path, link.parent.resolve()))
            _LATEST_BEFORE.setdefault(link, before)
        except (OSError, RuntimeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            console.print(f"[yellow]warning:[/yellow] runs/latest not updated ({link}: {reason})", highlight=False)

    def file(self, name: str) -> Path:
        return self.path / name

    def read(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            return {"schema": 1, "stages": {}}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CplitoolError(f"{path}: unreadable manifest ({e})") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("stages", {}), dict):
            raise CplitoolError(f"{path}: unreadable manifest (expected a JSON object with a 'stages' table)")
        manifest.setdefault("stages", {})
        return manifest

    def write(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / MANIFEST, manifest)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The run's lock for a short update: a no-op when this process holds it for the whole command."""
        if _holds(self.path) or _is_worker_rank():
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = _lock(self.path, wait=True, quiet=True)
        try:
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        """Read the manifest, apply `change` to it and write it back, under the lock (no lost updates)."""
        with self.locked():
            manifest = self.read()
            change(manifest)
            self.write(manifest)
        return manifest

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
        self.begin()
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
        self.update(lambda m: m["stages"].__setitem__(stage, entry))
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
