"""Atomic file writes, hashing and safe checkpoint loading: nothing half-written, nothing unpickled blindly."""

from __future__ import annotations

import _compat_pickle
import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import pickletools
import re
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from cplitool.toolchain.errors import CplitoolError, UsageError, typed_first_line
from cplitool.toolchain.paths import regular_input

TMP_SUFFIX = ".tmp"  # atomic_path's temporary files: .<name>.<random>.tmp beside the target
_TORCH_WRITER = ("PytorchStreamWriter", "file write failed", "inline_container")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, e: BaseException) -> CplitoolError:
    """One line naming the file and the reason (full disk, permission, read-only file system)."""
    if isinstance(e, OSError):
        reason = e.strerror or str(e)
    else:  # torch's zip writer reports a full disk as a RuntimeError without an errno
        reason = f"the writer failed ({typed_first_line(e)}); is the disk full?"
    return CplitoolError(f"cannot write {path}: {reason}; earlier files are left as they were")


def _is_torch_write_failure(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_WRITER)


def _refuse_special(path: Path) -> None:
    """The rename never replaces a device, a FIFO, a socket or a folder (as root it could replace /dev/full)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(f"{path}: is not a regular file (a device, FIFO or folder); refusing to replace it")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A failure (disk full, Ctrl-C) removes the temporary file and leaves any earlier `path` intact.
    """
    path = Path(path)
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get ordinary permissions
        _refuse_special(path)
        os.replace(tmp_path, path)
    except OSError as e:
        raise write_error(path, e) from None
    except RuntimeError as e:
        if _is_torch_write_failure(e):
            raise write_error(path, e) from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` and move the result to `path` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"))


def torch_bytes(obj: Any) -> bytes:
    """torch.save into memory: the archive's inner folder is then always "archive", not the temporary
    file's random name, so the same weights and metadata give the same bytes (and sha256) every time."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch(path: str | Path, obj: Any) -> Path:
    """torch.save, deterministic and atomic; a full disk is an ordinary OSError naming the file."""
    return write_bytes(path, torch_bytes(obj))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete atomic_path's temporary files a killed process left under `folder` (call with the run's lock)."""
    removed = []
    for p in folder.rglob(f".*{TMP_SUFFIX}"):
        if p.is_file() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pickle_globals(data: bytes) -> list[str]:
    """The `module.name` callables a pickle would import, read from its opcodes without executing any."""
    found: list[str] = []
    strings: list[str] = []  # recent string pushes, for STACK_GLOBAL (protocol 4+)
    memo: dict[int, str] = {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                found.append(_py3_name(module, name))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str) and "UNICODE" in op.name:
                strings.append(arg)
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int) and arg in memo:
                strings.append(memo[arg])
    except Exception:  # a damaged stream: report what was read before the damage
        pass
    return found


def _py3_name(module: str, name: str) -> str:
    """Protocol 0-2 pickles name Python 2 modules (__builtin__, commands); say what they import on Python 3."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def blocked_callables(path: Path) -> list[str]:
    """The callables in a checkpoint's pickle that torch's weights-only loader does not allow."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return []
    from torch._weights_only_unpickler import _get_allowed_globals

    allowed = set(_get_allowed_globals()) | {
        f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', '')}"
        for g in torch.serialization.get_safe_globals()
        if not isinstance(g, tuple)
    }
    return [g for g in dict.fromkeys(_pickle_globals(data)) if g not in allowed]


def checkpoint_kind(path: Path) -> str:
    """'zip' (torch.save), 'pickle' (legacy torch.save or pickle.dump), 'empty' or 'unknown', by content."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and head[1] <= pickle.HIGHEST_PROTOCOL:  # PROTO opcode
        return "pickle"
    return "unknown"


def _refusal(path: Path, e: BaseException) -> UsageError:
    blocked = blocked_callables(path)
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    what = ", ".join(blocked[:3]) or (found.group(1) if found else typed_first_line(e))
    return UsageError(
        f"{path}: refused: loading it would run code from the file (it calls {what}); nothing in it was "
        "executed. Save a plain state_dict (torch.save(model.state_dict(), ...)) or a .safetensors file."
    )


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UsageError(f"{path}: not a readable safetensors file ({typed_first_line(e)})") from None


def safe_load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with weights-only deserialization (or safetensors); never run code from the file.

    A pickle that needs arbitrary classes or callables is refused before anything in it executes, and
    the refusal names them. Files that are neither a torch archive nor a pickle are not handed to torch.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise UsageError(f"{path}: checkpoint not found")
        regular_input(path, "checkpoint")  # a FIFO would block the read
        if path.suffix == ".safetensors":
            return _load_safetensors(path)
        kind = checkpoint_kind(path)
    except OSError as e:
        raise UsageError(f"{path}: cannot read checkpoint: {e.strerror or e}") from None
    if kind == "empty":
        raise UsageError(f"{path}: truncated or corrupt checkpoint (the file is empty)")
    if kind == "unknown":
        raise UsageError(
            f"{path}: not a checkpoint: unknown format (neither a torch.save archive, a pickle nor .safetensors)"
        )
    try:
        with warnings.catch_warnings():  # the refusal below says all; torch's pickle-protocol warning is noise
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if ("weights only load failed" in str(e).lower() and blocked_callables(path)) or "GLOBAL" in str(e):
            raise _refusal(path, e) from None
        raise UsageError(f"{path}: truncated or corrupt checkpoint ({typed_first_line(e)})") from None
    except MemoryError:
        raise UsageError(f"{path}: corrupt checkpoint (it asks for more memory than there is)") from None
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EISDIR, errno.EIO):
            raise UsageError(f"{path}: cannot read checkpoint: {e.strerror or e}") from None
        raise UsageError(f"{path}: truncated or corrupt checkpoint ({typed_first_line(e)})") from None
    except Exception as e:  # weights-only unpickling executes nothing, so any other failure means a damaged file
        raise UsageError(f"{path}: truncated or corrupt checkpoint ({typed_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: expected a dict of tensors (a state_dict), got {type(obj).__name__}")
    return obj
