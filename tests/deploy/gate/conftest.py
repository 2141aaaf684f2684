"""One small gate pair for the module's tests: building it (prune + two exports) is the slow part."""

from __future__ import annotations

from pathlib import Path

import pytest

from cplitool.deploy.gate.pair import Pair, PairSpec, prepare_pair

SMALL = PairSpec(width=0.25)  # VGG-16 at a quarter width: the same layers, exported in seconds


@pytest.fixture(scope="session")
def small_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pair, Path]:
    """(the pair, its cache root), built once per session."""
    root = tmp_path_factory.mktemp("gate") / "pairs"
    return prepare_pair(SMALL, root)[0], root
