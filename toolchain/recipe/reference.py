"""The recipe reference as Markdown, rendered from the schema in sections.py.

docs/recipes.md embeds this output between markers and a test compares the two, so the documented keys,
types, defaults and limits cannot drift from what validation accepts (`cplitool check --reference`).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from cplitool.toolchain.recipe.dump import toml_value
from cplitool.toolchain.recipe.sections import SECTIONS

_TYPES = {int: "int", float: "float", bool: "bool", str: "string"}


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table" if typing.get_args(tp)[1] is Any else f"table of {type_name(typing.get_args(tp)[1])}"
    return _TYPES.get(tp, "any")


def constraint(tp: Any, rules: dict[str, Any]) -> str:
    """The type with its limits, e.g. `int ≥ 1`, `float in (0.0, 1.0]`, `one of "sgd", "adamw"` or `path`."""
    if "choices" in rules:
        return "one of " + ", ".join(f"`{toml_value(c)}`" for c in rules["choices"])
    name = "path" if rules.get("path") else type_name(tp)
    low, bracket = (rules["min"], "[") if "min" in rules else (rules.get("min_exclusive"), "(")
    if low is not None and "max" in rules:
        return f"{name} in {bracket}{low}, {rules['max']}]"
    if low is not None:
        return f"{name} {'≥' if bracket == '[' else '>'} {low}"
    return f"{name} ≤ {rules['max']}" if "max" in rules else name


def escape(text: str) -> str:
    """Keep `<root>`-style placeholders visible in rendered Markdown and pipes out of table syntax."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "/")


def default_of(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def render_reference() -> str:
    """One Markdown table per section: key, type and limits, default, meaning."""
    parts = []
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        rows = [
            f"| `{f.name}` | {constraint(hints[f.name], dict(f.metadata))} | `{toml_value(default_of(f))}` "
            f"| {escape(f.metadata['help'])} |"
            for f in dataclasses.fields(cls)
        ]
        parts.append(
            f"### `[{name}]`\n\n{inspect.cleandoc(cls.__doc__ or '')}\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
            + "\n".join(rows)
        )
    return "\n\n".join(parts) + "\n"
