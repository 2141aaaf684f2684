"""The gate's pair: pruned by cplitool to the MACs target, exported once per code version, reused after."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.gate import pair as pair_module
from deploy.gate.pair import PairSpec, code_version, prepare_pair

SMALL = PairSpec(width=0.25)  # VGG-16 at a quarter width: the same layers, exported in seconds


def test_code_version_follows_the_spec_and_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert code_version(SMALL) == code_version(PairSpec(width=0.25))
    assert code_version(SMALL) != code_version(PairSpec(width=0.25, macs_keep=0.6))
    edited = tmp_path / "vgg.py"
    edited.write_text("# an edited model file\n")
    real = pair_module.source_files
    monkeypatch.setattr(pair_module, "source_files", lambda m: [edited] if m == "toolchain.models" else real(m))
    before = code_version(SMALL)
    edited.write_text("# edited again\n")
    assert code_version(SMALL) != before  # a code change makes a new pair


def test_prepare_builds_once_then_reuses_and_drops_other_versions(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    (root / "0123456789abcdef").mkdir(parents=True)  # a pair of older code
    pair, built = prepare_pair(SMALL, root)
    assert built and pair.folder.name == code_version(SMALL)
    assert pair.file("dense").is_file() and pair.file("pruned").is_file()
    assert pair.macs_ratio == pytest.approx(0.5, abs=0.02)  # cplitool's plan meets the target within 2%
    assert [p.name for p in root.iterdir()] == [pair.folder.name]
    stamp = pair.file("pruned").stat().st_mtime_ns
    again, built = prepare_pair(SMALL, root)
    assert not built and again == pair and again.file("pruned").stat().st_mtime_ns == stamp
