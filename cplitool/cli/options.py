"""Options shared by deploy's commands that take model files."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from cplitool.deploy.limits import check_sample
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.validate import check_value

ForceOpt = Annotated[bool, typer.Option("--force", help="replace an existing output file that cplitool did not write")]

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
    check_sample(shape, f"--input-shape {text!r}")
    return shape


def within_recipe_limits(value: Any, section: Any, key: str, flag: str) -> Any:
    """`value` of a command-line flag, held to the limits of the recipe key it stands for (a usage error
    naming the flag and the key otherwise); a list is checked item by item."""
    if value is None:
        return None
    rules = next(f.metadata for f in dataclasses.fields(section) if f.name == key)
    errors: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        check_value(item, dict(rules), flag, errors)
    if errors:
        name = type(section).__name__.removesuffix("Section").lower()
        raise UsageError(f"{errors[0]} (the limits of the recipe's {name}.{key})")
    return value
