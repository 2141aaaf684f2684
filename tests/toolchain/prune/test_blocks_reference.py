"""prune.scope = "blocks" still gives exactly what the code gave before coupled groups existed."""

from __future__ import annotations

import json

import pytest

from tests.toolchain.prune.blocks_reference import CASES, FIXTURE, run_case


@pytest.mark.parametrize("name, shape, method", CASES)
def test_blocks_scope_reproduces_the_reference(name: str, shape: tuple[int, ...], method: str) -> None:
    """Catches any change to the blocks path's stages, widths, selected channels or plain least-squares refit
    (the ridge search, which came later, is off here and tested in test_solver)."""
    want = json.loads(FIXTURE.read_text())[f"{name}/{method}"]
    got = run_case(name, shape, method, scope="blocks", ridge_search=False)
    assert got["keep"] == want["keep"] and got["kept"] == want["kept"]
    for key in ("weight_sums", "weight_sq"):
        assert got[key].keys() == want[key].keys()
        for n, v in want[key].items():
            assert got[key][n] == pytest.approx(v, rel=1e-6, abs=1e-6), n
