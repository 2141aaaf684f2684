"""Ctrl-C and SIGTERM are failures: the command stops with exit 130 or 143 naming the stage it was in.

The handlers raise `Interrupted`, a BaseException that is not a KeyboardInterrupt: typer turns a
KeyboardInterrupt into a return value that a non-standalone caller could mistake for success, and no
`except Exception` in a stage can swallow it. Atomic writes and the run lock clean up on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STAGE: list[str] = []  # innermost last: the command, then a pipeline stage
_MAIN_PID = [0]


class Interrupted(BaseException):
    """A signal stopped the command; exit 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, stage: str) -> None:
        super().__init__(signum, stage)
        self.signum = signum
        self.stage = stage

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted ({signal.Signals(self.signum).name}) in {self.stage}"


def current_stage() -> str:
    return _STAGE[-1] if _STAGE else "cplitool"


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the work under way, for the interrupted message."""
    _STAGE.append(name)
    try:
        yield
    finally:
        _STAGE.pop()


def _raise(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _MAIN_PID[0]:  # a forked worker (data loading) keeps the default behaviour
        raise KeyboardInterrupt
    raise Interrupted(signum, current_stage())


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the SIGINT/SIGTERM handlers for one command; the previous ones come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _MAIN_PID[0] = os.getpid()
    previous: dict[int, Any] = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
