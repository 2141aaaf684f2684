"""Fixtures for the benchmark scripts' tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def keep_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """gpu_check.main puts the repository and the bundle on PYTHONPATH for its children; undone after each
    test, so later tests' subprocesses (the packaging tests' bare-name imports) see the session's own."""
    value = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", value or "")  # recorded either way, so teardown restores or removes it
    if value is None:
        monkeypatch.delenv("PYTHONPATH")
