"""`import cplitool` is cheap (the command line lives in this package) and every public name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cplitool


def test_import_does_not_load_torch() -> None:
    code = "import sys, cplitool; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", cplitool.__all__)
def test_public_names_resolve(name: str) -> None:
    assert getattr(cplitool, name) is not None
    assert name in dir(cplitool)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        cplitool.no_such_name  # noqa: B018
