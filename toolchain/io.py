"""Atomic file writes, hashing and safe checkpoint loading: nothing half-written, nothing unpickled blindly."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from toolchain.errors import CplitoolError, UsageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A failure (disk full, Ctrl-C) removes the temporary file and leaves any earlier `path` intact.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise CplitoolError(f"cannot write in {path.parent}: {e.strerror or e}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get ordinary permissions
        os.replace(tmp_path, path)
    except OSError as e:
        raise CplitoolError(f"cannot write {path}: {e.strerror or e}; earlier files are left as they were") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` and move the result to `path` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message, without terminal colour codes, kept short."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line[:160]}" if line else type(e).__name__


def safe_load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with weights-only deserialization (or safetensors); never run code from the file.

    A pickle that needs arbitrary classes or callables is refused before anything in it executes.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as e:
            raise UsageError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        with warnings.catch_warnings():  # the refusal below says all; torch's pickle-protocol warning is noise
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise UsageError(f"{path}: truncated or corrupt checkpoint ({_first_line(e)})") from None
        found = re.search(r"Unsupported (global|operand)[^\n]*?(?= was not| \(|$)", str(e), re.MULTILINE)
        raise UsageError(
            f"{path}: refused: loading it would run code from the file ({found.group(0) if found else _first_line(e)}); "
            "nothing in it was executed. Save a plain state_dict (torch.save(model.state_dict(), ...)) or a .safetensors file."
        ) from None
    except Exception as e:  # weights-only unpickling executes nothing, so any other failure means a damaged file
        raise UsageError(f"{path}: truncated or corrupt checkpoint ({_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: expected a dict of tensors (a state_dict), got {type(obj).__name__}")
    return obj
