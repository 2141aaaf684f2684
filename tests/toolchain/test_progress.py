"""Progress bars: drawn on a terminal for rank 0 only, with a rate in the task's unit."""

from __future__ import annotations

import pytest
from rich.progress import Task

from cplitool.toolchain import progress
from cplitool.toolchain.progress import RateColumn, progress_bar


def test_bars_only_on_a_terminal_and_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(progress.console), "is_terminal", property(lambda self: True))
    monkeypatch.delenv("RANK", raising=False)
    assert not progress_bar().disable
    monkeypatch.setenv("RANK", "1")
    assert progress_bar().disable
    monkeypatch.setattr(type(progress.console), "is_terminal", property(lambda self: False))
    monkeypatch.setenv("RANK", "0")
    assert progress_bar().disable


def test_rate_column_shows_the_unit() -> None:
    bar = progress_bar()
    task_id = bar.add_task("decode", total=10, unit="img")
    task: Task = bar.tasks[task_id]
    assert RateColumn().render(task).plain == "-- img/s"  # no speed measured yet
