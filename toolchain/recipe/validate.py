"""Check a parsed TOML table against the schema in sections.py; collect every problem as one line.

Each message names the recipe file, the key path and what was expected, so a user can fix all of
them in one edit. Nothing is written and no work starts until the recipe is clean.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any

from toolchain.recipe.sections import SECTIONS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"a list of {describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table"
    return _NAMES.get(tp, "any value")


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value converted to tp); ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            return False, value
        items = [coerce(v, inner) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        inner = typing.get_args(tp)[1]
        entries = {k: coerce(v, inner) for k, v in value.items()}
        return all(ok for ok, _ in entries.values()), {k: v for k, (_, v) in entries.items()}
    if tp is Any:
        return True, value
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, tp), value


def expand_vars(value: Any, where: str, errors: list[str]) -> Any:
    """Expand ${VAR} from the environment in strings (also inside lists)."""
    if isinstance(value, list):
        return [expand_vars(v, where, errors) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            errors.append(f"{where}: environment variable ${{{m.group(1)}}} is not set")
            return m.group(0)
        return os.environ[m.group(1)]

    return _VAR.sub(sub, value)


def check_rules(value: Any, rules: dict[str, Any], where: str, errors: list[str]) -> None:
    if "choices" in rules and value not in rules["choices"]:
        choices = ", ".join(repr(c) for c in rules["choices"])
        errors.append(f"{where}: expected one of {choices}, got {value!r}{did_you_mean(str(value), rules['choices'])}")
    if "min" in rules and value < rules["min"]:
        errors.append(f"{where}: expected a value >= {rules['min']}, got {value!r}")
    if "min_exclusive" in rules and value <= rules["min_exclusive"]:
        errors.append(f"{where}: expected a value > {rules['min_exclusive']}, got {value!r}")
    if "max" in rules and value > rules["max"]:
        errors.append(f"{where}: expected a value <= {rules['max']}, got {value!r}")


def build_section(name: str, table: Any, base: Path, prefix: str, errors: list[str]) -> Any:
    """Build one section dataclass from its TOML table, appending a line to `errors` per problem."""
    cls = SECTIONS[name]
    if not isinstance(table, dict):
        errors.append(f"{prefix}{name}: expected a table ([{name}]), got {type(table).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        where = f"{prefix}{name}.{key}"
        if key not in fields:
            errors.append(f"{where}: unknown key{did_you_mean(key, fields)}; allowed: {', '.join(fields)}")
            continue
        n_before = len(errors)
        raw = expand_vars(raw, where, errors)
        ok, value = coerce(raw, hints[key])
        if not ok:
            errors.append(f"{where}: expected {describe(hints[key])}, got {raw!r}")
            continue
        rules = dict(fields[key].metadata)
        if not isinstance(value, list | dict):
            check_rules(value, rules, where, errors)
        if rules.get("path") and value and len(errors) == n_before:
            value = str((base / Path(value).expanduser()).resolve())
        values[key] = value
    return cls(**values)


def validate_table(raw: dict[str, Any], source: Path, errors: list[str]) -> dict[str, Any]:
    """Turn a parsed recipe into section objects; unknown sections are reported with a suggestion."""
    prefix = f"{source}: "
    sections: dict[str, Any] = {}
    for key, table in raw.items():
        if key not in SECTIONS:
            errors.append(
                f"{prefix}{key}: unknown section{did_you_mean(key, SECTIONS)}; allowed: {', '.join(SECTIONS)}"
            )
            continue
        sections[key] = build_section(key, table, source.parent, prefix, errors)
    return sections
