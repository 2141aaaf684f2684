"""Progress bars: drawn on a terminal for rank 0 only, with a rate in the task's unit, fitting 80 columns."""

from __future__ import annotations

import io

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.progress import Progress, Task

from cplitool.toolchain import progress
from cplitool.toolchain.progress import RateColumn, clock, progress_bar


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


def rendered(bar: Progress, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True)
    lines = console.render_lines(bar.make_tasks_table(bar.tasks), console.options.update(width=width))
    return ["".join(segment.text for segment in line).rstrip() for line in lines]


def test_bars_keep_count_rate_and_eta_on_one_line_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(100))
    bar = progress_bar()
    monkeypatch.setattr(bar, "get_time", lambda: next(clock))
    decode = bar.add_task("decode train split of a long video data set", total=50_000, unit="img")
    bench = bar.add_task("bench b64 onnxruntime cpu fp32", total=4, unit="config")
    bar.update(decode, completed=12_000)
    bar.update(bench, completed=1)
    bar.update(decode, completed=24_000)
    bar.update(bench, completed=2)
    lines = rendered(bar, 80)
    assert len(lines) == 2 and all(cell_len(line) <= 80 for line in lines), lines
    assert "24000/50000" in lines[0] and "img/s" in lines[0] and "ETA" in lines[0]
    assert "s/config" in lines[1] and "ETA" in lines[1]  # a slow config is seconds per config, not "0.0 config/s"


def test_clock_reads_minutes_then_hours() -> None:
    assert clock(None) == "-:--" and clock(75) == "1:15" and clock(3725) == "1:02:05"
