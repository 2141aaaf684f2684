"""How cplitool was installed, so a missing-library message gives a pip line that works for this user;
which versions of other distributions are installed (doctor, bench.json, the ONNX Runtime clash check).

A clone installed with `pip install -e .` (what `make setup` does) cannot use `pip install 'cplitool[trt]'`:
that would fetch a second copy from an index. pip records the install in the distribution's
`direct_url.json` (PEP 610): `dir_info.editable` for an editable install, with the clone's path in `url`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import metadata
from urllib.parse import unquote, urlparse

DIST = "cplitool"


def editable_root() -> str | None:
    """The source folder of an editable install; '.' when running from a source tree that is not installed;
    None for an ordinary (wheel) install."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return "."  # imported from a checkout on PYTHONPATH
    text = dist.read_text("direct_url.json")
    if not text:
        return None  # installed from an index or a wheel file: no direct URL recorded
    try:
        info = json.loads(text)
    except ValueError:
        return None
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info.get("url", ""))
    return unquote(url.path) if url.scheme == "file" and url.path else "."


def install_hint(extra: str) -> str:
    """The pip command that adds `extra` to this installation."""
    root = editable_root()
    if root is None:
        return f"pip install '{DIST}[{extra}]'"
    return f"pip install -e '{root}[{extra}]'"


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """name -> version of each distribution in `names` that is installed (package metadata, no import)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
