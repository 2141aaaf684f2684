"""One look for every progress bar: description, bar, count, rate, elapsed and ETA (rich, on stderr).

The layout fits 80 columns: the description gives way first (cut with "…"), then the bar shrinks, so
the count, the rate and the times always stay on the one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)

DESCRIPTION_WIDTH = 28  # longer descriptions are cut at the end with "…"


class RateColumn(ProgressColumn):
    """Items per second, or seconds per item when an item takes longer than a second (a slow bench
    config reads "4.2 s/config", not "0.0 config/s"); the unit comes from the task's `unit` field."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "it")
        speed = task.speed
        if not speed:
            return Text(f"-- {unit}/s", style="cyan")
        text = f"{speed:,.1f} {unit}/s" if speed >= 1 else f"{1 / speed:,.1f} s/{unit}"
        return Text(text, style="cyan")


def clock(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; "-:--" when unknown."""
    if seconds is None:
        return "-:--"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


class TimesColumn(ProgressColumn):
    """Elapsed and remaining time in one column: "0:12 ETA 0:30"."""

    def render(self, task: Task) -> Text:
        remaining = None if task.finished else task.time_remaining
        return Text(f"{clock(task.elapsed)} ETA {clock(0 if task.finished else remaining)}", style="yellow")


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn(
            "[bold]{task.description}",
            table_column=Column(max_width=DESCRIPTION_WIDTH, no_wrap=True, overflow="ellipsis"),
        ),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=8)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        RateColumn(table_column=Column(no_wrap=True)),
        TimesColumn(table_column=Column(no_wrap=True)),
        console=console,
        transient=transient,
        expand=True,
        # Logs and CI get the per-epoch lines, not redraw noise; under torchrun only rank 0 draws.
        disable=not console.is_terminal or os.environ.get("RANK", "0") != "0",
        speed_estimate_period=600,  # rates (and ETAs) over the last 10 minutes: a prune stage can take a minute
    )


_shown: Progress | None = None  # the display on screen: rich draws one live display at a time

Advance = Callable[..., None]


@contextmanager
def task(description: str, total: float | None, unit: str = "it", transient: bool = True) -> Iterator[Advance]:
    """One task on the display already shown, or on a new one: nested work (a prune's stage bar, each stage's
    capture bar under it) shares one display, so the overall ETA stays on screen. Yields
    advance(steps=1, description=None); a transient task is removed when done."""
    global _shown
    outer = _shown is None
    bar = progress_bar(transient) if _shown is None else _shown
    if outer:
        bar.start()
        _shown = bar
    tid = bar.add_task(description, total=total, unit=unit)

    def advance(steps: float = 1, description: str | None = None) -> None:
        bar.update(tid, advance=steps, description=description)

    try:
        yield advance
    finally:
        if outer:
            bar.stop()
            _shown = None
        elif transient:
            bar.remove_task(tid)
