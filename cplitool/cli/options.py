"""Options shared by deploy's commands that take model files."""

from __future__ import annotations

from typing import Annotated

import typer

from cplitool.toolchain.errors import UsageError

ShapeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-shape", help="one sample's input shape without the batch, e.g. 3,224,224", show_default=False
    ),
]


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """'3,224,224' (or 3x224x224) -> (3, 224, 224); a usage error names the value otherwise."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise UsageError(f"--input-shape {text!r}: expected positive sizes separated by commas, e.g. 3,224,224")
    return shape
