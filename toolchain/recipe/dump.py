"""Write a resolved recipe back as TOML (the stdlib reads TOML but does not write it)."""

from __future__ import annotations

import json
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{k if _BARE.match(k) else json.dumps(k)} = {toml_value(x)}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(sections: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
        for name, table in sections.items()
    )
