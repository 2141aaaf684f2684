"""Checks on the paths a command reads and writes, made before any work: no output destroys an input,
replaces a device or a FIFO, or overwrites a file cplitool did not write; no input read blocks on a FIFO."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from cplitool.toolchain.errors import UsageError

MAX_JSON_BYTES = 64 << 20  # bench, baseline and manifest files are kilobytes; anything this big is not one


def shown(path: str | Path) -> str:
    """How a path is printed: relative to the working directory when it lies under it, so a deep working
    directory does not push a line past a terminal's width; as given otherwise."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def regular_input(path: str | Path, what: str = "file") -> Path:
    """`path` if it is an existing regular file (through symlinks); a usage error otherwise, so that a FIFO
    or a device is never opened (opening a FIFO blocks until something writes to it)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else (e.strerror or str(e))
        raise UsageError(f"{path}: {what} {reason}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: {what} is {kind(mode)}; expected a regular file")
    return path


def check_output(output: str | Path, inputs: Iterable[str | Path], flag: str) -> Path:
    """Refuse (exit 2) an output that is an input of the same command (the same file, a hard link or a
    symlink to it) or an existing path that is not a regular file (a device, a FIFO, a folder)."""
    output = Path(output)
    try:
        st = output.stat()
    except FileNotFoundError:
        return output
    except OSError as e:
        raise UsageError(f"{flag} {output}: cannot use it as an output ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{flag} {output}: is {kind(st.st_mode)}; expected a new path or a regular file")
    for source in inputs:
        try:
            same = os.path.samefile(source, output)
        except OSError:
            continue
        if same:
            raise UsageError(f"{flag} {output}: is the input {source}; writing it would destroy it, give another path")
    return output


def is_cplitool_json(path: Path) -> bool:
    """True when `path` holds a JSON object cplitool wrote (its "schema" is cplitool-...)."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return False
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith("cplitool-")


def check_overwrite(output: Path, force: bool, flag: str) -> None:
    """Refuse to replace an existing file cplitool did not write (someone's notes) unless --force."""
    if not force and output.is_file() and not is_cplitool_json(output):
        raise UsageError(
            f"{flag} {output}: exists and is not a file cplitool wrote (no cplitool schema); "
            "give another path, or --force to replace it"
        )
