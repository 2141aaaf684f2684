"""The one-line helpers every error path uses: an exception's first line, and the closest valid name."""

from __future__ import annotations

from cplitool.toolchain.errors import did_you_mean, first_line, typed_first_line


def test_first_line_drops_colour_codes_and_later_lines_and_keeps_it_short() -> None:
    e = RuntimeError("\x1b[31mCUDA error: out of memory\x1b[0m\nTraceback (most recent call last): ...")
    assert first_line(e) == "CUDA error: out of memory"
    assert first_line(ValueError("x" * 500), limit=10) == "x" * 10


def test_an_empty_message_is_named_by_its_type() -> None:
    assert first_line(KeyError()) == "KeyError"
    assert typed_first_line(KeyError()) == "KeyError"
    assert typed_first_line(OSError("disk full\nmore")) == "OSError: disk full"


def test_did_you_mean_names_the_closest_option_only_when_close() -> None:
    assert did_you_mean("resnet5O", ["resnet50", "vgg16"]) == " (did you mean 'resnet50'?)"
    assert did_you_mean("zzz", ["resnet50", "vgg16"]) == ""
