"""Tables that fit the terminal, and 80 columns when piped, without cutting a number.

Rich shrinks an over-wide table by narrowing its widest columns first and then cuts words with "…",
so a wide numeric column loses digits while a wordy header keeps its width. Here each column gets at
least its longest word (a number is one word), and the room left goes to the columns that want more,
in proportion to what they lack; headers and text wrap at spaces. A table whose longest words alone
do not fit folds them onto the next line rather than cutting them. (The border and padding widths come
from two private Table helpers; tests/toolchain/cli/test_tables.py fails if a rich release changes them.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Column, Table
from rich.text import Text


def _text(renderable: RenderableType) -> str:
    """The characters a cell shows: console markup such as "[red]REGRESSED[/red]" takes no room."""
    if isinstance(renderable, str):
        return Text.from_markup(renderable).plain
    return renderable.plain if isinstance(renderable, Text) else str(renderable)


def _range(column: Column) -> tuple[int, int]:
    """(longest word, longest line) over the column's header and cells."""
    texts = [_text(column.header), *(_text(c) for c in column.cells)]
    words = [cell_len(w) for t in texts for w in t.split()] or [1]
    lines = [cell_len(line) for t in texts for line in t.splitlines()] or [1]
    floor = column.min_width or 1
    return max(floor, *words), max(floor, *lines)


def widths(ranges: list[tuple[int, int]], room: int) -> list[int] | None:
    """Column widths within `room`: every column its longest word, the rest shared in proportion to what
    each lacks of its longest line; None when the natural widths fit anyway or even the words do not."""
    lows, highs = [r[0] for r in ranges], [r[1] for r in ranges]
    if sum(highs) <= room or sum(lows) > room:
        return None
    spare, lack = room - sum(lows), [h - lo for lo, h in zip(lows, highs, strict=True)]
    out = [lo + spare * d // sum(lack) for lo, d in zip(lows, lack, strict=True)]
    for i in sorted(range(len(out)), key=lambda i: highs[i] - out[i], reverse=True)[: room - sum(out)]:
        out[i] += 1  # the rounding remainder, to the columns that still lack the most
    return out


@dataclass
class Fitted:
    """A table laid out for the width it is rendered at (known only then: terminal, pipe or file)."""

    table: Table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        table = self.table
        columns = table.columns
        padding = sum(table._get_padding_width(i) for i in range(len(columns)))
        room = options.max_width - table._extra_width - padding
        sized = widths([_range(c) for c in columns], room)
        if sized:
            for column, width in zip(columns, sized, strict=True):
                column.width = width
        yield table


@dataclass
class OneLine:
    """A table whose rows must each stay on one line (a per-layer listing scanned by eye): at render time
    the columns COLUMNS cannot hold are dropped, lowest `keep` rank first, and the caption names them
    and where they are (`elsewhere`)."""

    table: Table
    ranks: list[int]  # per column: higher is dropped later; the first column is never dropped
    elsewhere: str

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        table = self.table
        natural = [_range(c)[1] for c in table.columns]
        order = sorted(range(1, len(natural)), key=lambda i: self.ranks[i])
        kept = list(range(len(natural)))

        def width() -> int:  # cells, one space of padding each side, and a border between columns
            return sum(natural[i] for i in kept) + 3 * len(kept) + 1

        dropped = []
        while order and width() > options.max_width:
            i = order.pop(0)
            kept.remove(i)
            dropped.append(i)
        yield table if not dropped else self.narrowed(kept, dropped)

    def narrowed(self, kept: list[int], dropped: list[int]) -> Table:
        src = self.table
        names = ", ".join(_text(src.columns[i].header) for i in dropped)
        note = f"not shown at this width: {names} (in {self.elsewhere})"
        caption = f"{_text(src.caption)}\n{note}" if src.caption else note
        out = Table(title=src.title, caption=caption)
        for i in kept:
            c = src.columns[i]
            out.add_column(c.header, justify=c.justify, no_wrap=True)
        for row in zip(*(src.columns[i].cells for i in kept), strict=True):
            out.add_row(*row)
        return out


def one_line(table: Table, ranks: list[int], elsewhere: str) -> OneLine:
    """`table`, each row on one line: cells never wrap, and columns are dropped instead (see OneLine)."""
    for column in table.columns:
        column.no_wrap = True
    return OneLine(table, ranks, elsewhere)


def fitted(table: Table) -> Fitted:
    """`table`, to be printed without a cut number: every column may wrap at spaces and fold a word that is
    still too wide; call it on a finished table just before printing it."""
    for column in table.columns:
        column.no_wrap = False
        column.overflow = "fold"
    return Fitted(table)
