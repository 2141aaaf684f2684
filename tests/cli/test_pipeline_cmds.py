"""The stage table of `cplitool run`: entries load lazily (importing all six costs seconds on every command,
--help included), so this test is where a deleted or renamed stage function shows up."""

from __future__ import annotations

import pytest

from cplitool.cli.pipeline_cmds import STAGES
from cplitool.toolchain.pipeline.runner import StageSpec, load_entry


@pytest.mark.parametrize("spec", STAGES, ids=lambda s: s.name)
def test_every_stage_entry_is_a_function_of_this_installation(spec: StageSpec) -> None:
    assert callable(load_entry(spec.entry)), spec.entry
