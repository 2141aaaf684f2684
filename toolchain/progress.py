"""One look for every progress bar: description, bar, count, rate, elapsed and ETA (rich, on stderr)."""

from __future__ import annotations

import os

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
    )
