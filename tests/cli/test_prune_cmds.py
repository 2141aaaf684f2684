"""The prune per-layer table: one line per layer at 80 columns, dropping columns rather than wrapping."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from cplitool.cli.prune_cmds import layer_table


def layer(name: str, c_in: int, c_out: int, kept: int) -> dict[str, Any]:
    return {
        "layer": name,
        "in_before": c_in,
        "in_after": c_in // 2,
        "out_before": c_out,
        "out_after": kept,
        "keep": kept / c_out,
        "macs_before": 37_748_736,
        "macs_after": 9_437_184,
        "err_before": 0.2708,
        "err_after": 0.0417,
        "capture_s": 11.2,
        "gram_s": 30.1,
        "solve_s": 9.3,
    }


REPORT = {
    "method": "cpli",
    "macs_before": 313_000_000,
    "macs_after": 157_000_000,
    "macs_keep": 0.5016,
    "target_macs_keep": 0.5,
    "input_shape": [3, 32, 32],
    "layers": [layer("features.40", 512, 512, 256), layer("layer3.2.conv1", 256, 256, 128)],
}


def rendered(width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(layer_table(REPORT))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue().splitlines()


def test_every_layer_is_one_line_at_80_columns() -> None:
    lines = rendered(80)
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if "features.40" in line or "layer3.2.conv1" in line]
    assert len(rows) == 2  # a wrapped row would put its second half on a line without the layer name
    assert "512→256" in rows[0] and "0.2708→0.0417" in rows[0]


def test_columns_that_do_not_fit_are_named_with_where_to_find_them() -> None:
    wide, narrow = "\n".join(rendered(120)), "\n".join(rendered(60))
    assert "not shown" not in wide and "37.749→9.437" in wide
    assert "not shown at this width: in" in narrow and "prune_report.json" in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 60
