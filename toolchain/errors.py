"""Errors a user can act on. The CLI prints them as one clear message (never a traceback)."""

from __future__ import annotations


class CplitoolError(Exception):
    """An error caused by the environment or the data, reported without a traceback (exit 1)."""

    exit_code = 1


class UsageError(CplitoolError):
    """Bad input from the user: a recipe, a flag, a path or a checkpoint that does not fit (exit 2)."""

    exit_code = 2


class MissingDependencyError(CplitoolError):
    """An optional library (TensorRT, pycuda, onnxruntime-gpu) is not installed (exit 2)."""

    exit_code = 2
