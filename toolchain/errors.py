"""Errors a user can act on. The CLI prints them as one clear message (never a traceback)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class CplitoolError(Exception):
    """An error caused by the environment or the data, reported without a traceback (exit 1)."""

    exit_code = 1


class UsageError(CplitoolError):
    """Bad input from the user: a recipe, a flag, a path or a checkpoint that does not fit (exit 2)."""

    exit_code = 2


class MissingDependencyError(CplitoolError):
    """An optional library (TensorRT, pycuda, onnxruntime-gpu) is not installed (exit 2)."""

    exit_code = 2


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, without terminal colour codes, at most `limit` characters;
    the exception's type name when the message is empty. What a one-line error shows of a library's failure."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def typed_first_line(e: BaseException, limit: int = 300) -> str:
    """`Type: first line`, for failures whose type says what went wrong (OSError, RuntimeError, ...)."""
    line = first_line(e, limit)
    return line if line == type(e).__name__ else f"{type(e).__name__}: {line}"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `options`, or '' when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
