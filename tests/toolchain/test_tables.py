from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from cplitool.toolchain.tables import fitted, widths


def render(table: Table, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(fitted(table))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_widths_give_every_column_its_longest_word_then_share_the_rest() -> None:
    """Catches rich's own rule (narrow the widest column first, cutting its numbers)."""
    assert widths([(5, 30), (10, 10)], 100) is None  # fits as it is
    assert widths([(50, 60), (60, 60)], 100) is None  # even the words do not fit: rich folds them
    out = widths([(4, 20), (12, 12), (2, 10)], 30)
    assert out is not None and sum(out) == 30
    assert out[0] >= 4 and out[1] == 12 and out[2] >= 2


def test_a_wide_numeric_table_keeps_every_number_whole_at_80_columns() -> None:
    table = Table(title="t")
    for h in ("backend device variant precision", "batch", "dense latency ms", "pruned latency ms", "pruned / dense"):
        table.add_column(h, justify="right", no_wrap=True)
    numbers = ["1234.5", "1230.1-1240.2", "0.0123", "0.0110-0.0130", "0.010", "0.009-0.011"]
    cells = [f"{a}\n{b}" for a, b in zip(numbers[::2], numbers[1::2], strict=True)]
    table.add_row("onnxruntime cuda:NVIDIA H200 cudagraph fp16", "1024", *cells)
    text = render(table)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for n in numbers:
        assert n in text  # on one line, not folded or cut


def test_markup_takes_no_room_and_every_column_ends_inside_80() -> None:
    """Catches sizing cells by their markup ("[red]REGRESSED[/red]" is 9 wide, not 19): the gate's table was
    cut at its last column when piped."""
    table = Table(title="t")
    for h in ("measurement", "metric", "base", "now", "Δ", "limit"):
        table.add_column(h, justify="right")
    table.add_column("verdict", min_width=9)
    table.add_row(
        "onnxruntime cpu fp32 b16 t1", "pruned/dense CPU-time ratio", "0.5291 ± 0.8%", "0.5341 ± 1.4%", "+1.0%",
        "0.5500 (+4.0%)", "[red]REGRESSED[/red]",
    )  # fmt: skip
    text = render(table)
    assert "REGRESSED" in text and "0.5291" in text and "0.5500" in text
    assert all(line.rstrip().endswith(("┓", "┃", "┩", "│", "┘")) for line in text.splitlines()[1:] if line.strip())
