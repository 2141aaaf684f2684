"""Library warnings as cplitool's own one-line notes: torch, ONNX and NumPy warnings are written for
their developers and run to several lines; a user gets the first sentence once, the full text with
--verbose."""

from __future__ import annotations

import warnings
from typing import Any, TextIO

from cplitool.toolchain.progress import console
from cplitool.toolchain.verbosity import verbose

LIMIT = 96
_seen: set[str] = set()


def note_text(message: str, category: type[Warning]) -> str:
    """The first line, cut to its first sentence when long, and to LIMIT characters at most."""
    text = (message.strip().splitlines() or [category.__name__])[0]
    if len(text) > LIMIT and ". " in text:
        text = text[: text.index(". ") + 1]
    return text if len(text) <= LIMIT else text[: LIMIT - 1] + "…"


def show_as_note(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """warnings.showwarning's replacement: each distinct warning once, as "note: ..."."""
    text = f"{message} ({category.__name__}, {filename}:{lineno})" if verbose() else note_text(str(message), category)
    if text in _seen:
        return
    _seen.add(text)
    console.print(f"note: {text}", highlight=False, markup=False, soft_wrap=not verbose())


def install() -> Any:
    """Route warnings through show_as_note from now on; returns the previous hook."""
    previous = warnings.showwarning
    warnings.showwarning = show_as_note
    return previous
