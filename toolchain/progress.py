"""One look for every progress bar: description, bar, count, rate, elapsed and ETA (rich, on stderr)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second; the unit comes from the task's `unit` field (default 'it')."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "it")
        return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else f"-- {unit}/s", style="cyan")


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
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
