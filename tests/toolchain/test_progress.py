"""Progress bars: drawn on a terminal for rank 0 only, with a rate in the task's unit."""

from __future__ import annotations

import pytest
from rich.progress import Task

from toolchain import progress
from toolchain.progress import RateColumn, progress_bar


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


def test_nested_tasks_share_one_display_and_transient_ones_leave() -> None:
    """rich draws one live display at a time: a stage bar and its capture bar must be tasks of one Progress."""
    with progress.task("prune stages", 3, "stage", transient=False) as outer:
        shown = progress._shown
        assert shown is not None
        with progress.task("capture + Gram", 10, "batch") as inner:
            assert progress._shown is shown and len(shown.tasks) == 2
            inner(4)
            assert shown.tasks[1].completed == 4
        assert [t.description for t in shown.tasks] == ["prune stages"]
        outer(1, description="prune stages (conv2)")
        assert shown.tasks[0].completed == 1 and shown.tasks[0].description == "prune stages (conv2)"
    assert progress._shown is None
