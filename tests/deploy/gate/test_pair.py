"""The gate's pair: pruned by cplitool to the MACs target, exported once per code version, reused after."""

from __future__ import annotations

from pathlib import Path

import pytest

from cplitool.deploy.gate import pair as pair_module
from cplitool.deploy.gate.pair import Pair, PairSpec, code_version, prepare_pair
from tests.deploy.gate.conftest import SMALL


def test_code_version_follows_the_spec_and_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert code_version(SMALL) == code_version(PairSpec(width=0.25))
    assert code_version(SMALL) != code_version(PairSpec(width=0.25, macs_keep=0.6))
    edited = tmp_path / "vgg.py"
    edited.write_text("# an edited model file\n")
    real = pair_module.source_files
    monkeypatch.setattr(
        pair_module, "source_files", lambda m: [edited] if m == "cplitool.toolchain.models" else real(m)
    )
    before = code_version(SMALL)
    edited.write_text("# edited again\n")
    assert code_version(SMALL) != before  # a code change makes a new pair


def test_prepare_builds_once_then_reuses_and_drops_other_versions(small_pair: tuple[Pair, Path]) -> None:
    pair, root = small_pair
    assert pair.folder.name == code_version(SMALL)
    assert pair.file("dense").is_file() and pair.file("pruned").is_file()
    assert pair.macs_ratio == pytest.approx(0.5, abs=0.02)  # cplitool's plan meets the target within 2%
    stale = root / "0123456789abcdef"  # a pair of older code
    stale.mkdir()
    stamp = pair.file("pruned").stat().st_mtime_ns
    again, built = prepare_pair(SMALL, root)
    assert not built and again == pair and again.file("pruned").stat().st_mtime_ns == stamp
    (pair.folder / "pair.json").unlink()  # incomplete: built again, and the other version dropped
    rebuilt, built = prepare_pair(SMALL, root)
    assert built and rebuilt.folder == pair.folder and sorted(p.name for p in root.iterdir()) == [pair.folder.name]
