"""How paths are shown to the user (toolchain/paths.py's refusals are tested in tests/toolchain/fuzz)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cplitool.toolchain.paths import shown


def test_a_path_under_the_working_directory_is_shown_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "a" / "very" / "deep" / "working" / "directory"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert shown(deep / "runs" / "quickstart" / "dense.pt") == "runs/quickstart/dense.pt"
    assert shown(tmp_path / "elsewhere.pt") == str(tmp_path / "elsewhere.pt")  # outside: unchanged
