"""Library warnings reach the user as one short note each, once."""

from __future__ import annotations

import warnings

import pytest

from cplitool.toolchain import warning_notes
from cplitool.toolchain.verbosity import ENV

TORCH_STYLE = (
    "This DataLoader will create 4 worker processes in total. Our suggested max number of worker in current "
    "system is 2, which is smaller than what this DataLoader is going to create. Please be aware that excessive "
    "worker creation might get DataLoader running slow or even freeze."
)


def test_a_long_warning_becomes_its_first_sentence_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(warning_notes, "_seen", set())
    monkeypatch.delenv(ENV, raising=False)
    previous = warning_notes.install()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = warning_notes.show_as_note
            for _ in range(2):
                warnings.warn(TORCH_STYLE, UserWarning, stacklevel=1)
    finally:
        warnings.showwarning = previous
    err = capsys.readouterr().err.splitlines()
    assert err == ["note: This DataLoader will create 4 worker processes in total."]


def test_note_text_cuts_without_a_sentence_end() -> None:
    text = warning_notes.note_text("x" * 300 + "\nsecond line", UserWarning)
    assert len(text) == warning_notes.LIMIT and text.endswith("…")
    assert warning_notes.note_text("", DeprecationWarning) == "DeprecationWarning"
