"""Check a parsed TOML table against the schema in sections.py; collect every problem as one line.

Each message names the recipe file, the key path and what was expected, so a user can fix all of
them in one edit. Nothing is written and no work starts until the recipe is clean.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path
from typing import Any

from cplitool.toolchain.errors import did_you_mean
from cplitool.toolchain.recipe.sections import SECTIONS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
INT_LIMIT = 2**31 - 1  # ints without a documented maximum: what torch's and the OS's C ints hold
NAME_LIMIT = 200  # characters in a name that becomes one path component (file systems allow 255 bytes)


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


def scalar_problem(value: Any, rules: dict[str, Any]) -> str | None:
    """What is wrong with one scalar whatever its key: NaN/inf, an int beyond C's range, a NUL byte."""
    if isinstance(value, float) and not math.isfinite(value) and not rules.get("nonfinite"):
        return f"expected a finite number, got {value!r}"
    if isinstance(value, int) and not isinstance(value, bool) and "max" not in rules and abs(value) > INT_LIMIT:
        return f"expected a value <= {INT_LIMIT}, got {value!r}"
    if isinstance(value, str) and "\x00" in value:
        return f"expected text without NUL characters, got {value!r}"
    return None


def check_value(value: Any, rules: dict[str, Any], where: str, errors: list[str]) -> None:
    """Check a value, each item of a list and each entry of a table (keys included) against the field's rules."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_value(item, rules, f"{where}[{i}]", errors)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                errors.append(f"{where}: expected keys without NUL characters, got {key!r}")
            else:
                check_value(item, rules, f"{where}.{key}", errors)
        return
    problem = scalar_problem(value, rules)
    if problem:
        errors.append(f"{where}: {problem}")
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        check_rules(value, rules, where, errors)


def check_name(value: str, where: str, errors: list[str]) -> None:
    """A name that becomes one path component: never a separator, `.` or `..`, so nothing escapes."""
    if not _COMPONENT.fullmatch(value) or value in (".", "..") or len(value) > NAME_LIMIT:
        errors.append(
            f"{where}: expected one path component of letters, digits, '.', '_' and '-' (not '.' or '..', at most "
            f"{NAME_LIMIT} characters), got {value!r}; use run.dir to place the run elsewhere"
        )


def name_from_stem(stem: str) -> str:
    """A run name from a recipe file's stem, with anything a name may not hold replaced by '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:NAME_LIMIT]
    return name if name.strip(".") else "run"


def resolve_path(value: str, base: Path, where: str, errors: list[str]) -> str:
    """An absolute path: `~` and `~user` expanded (an unknown user is an error), relative to `base`."""
    try:
        return str((base / Path(value).expanduser()).resolve())
    except RuntimeError:  # expanduser: no such user or no home directory; resolve: a symlink loop
        user = value.split("/", 1)[0]
        reason = f"cannot expand {user!r} (no such user)" if value.startswith("~") else "a symlink loop"
        errors.append(f"{where}: {reason} in {value!r}")
    except OSError as e:
        errors.append(f"{where}: unusable path {value!r}: {e.strerror or e}")
    return value


def check_rules(value: Any, rules: dict[str, Any], where: str, errors: list[str]) -> None:
    if rules.get("name") and isinstance(value, str) and value:
        check_name(value, where, errors)
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
        check_value(value, rules, where, errors)
        if rules.get("path") and value and len(errors) == n_before:
            value = resolve_path(value, base, where, errors)
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
