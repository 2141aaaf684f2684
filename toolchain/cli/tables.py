"""Tables that fit the terminal, and 80 columns when piped: cells wrap at spaces, and a word still too
wide folds onto the next line instead of being cut with "…" (a number is never shortened)."""

from __future__ import annotations

from rich.table import Table


def fitted(table: Table) -> Table:
    """`table` with every column allowed to wrap and fold; call it on a table just before printing it."""
    for column in table.columns:
        column.no_wrap = False
        column.overflow = "fold"
    return table
