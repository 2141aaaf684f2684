"""Shared fixtures: a temporary working directory per test (runs/ lands there) and the CIFAR-10 JPEG root."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty directory so runs/ and runs/latest never touch the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cifar_root() -> Path:
    if not CIFAR_JPEG.is_dir():
        pytest.skip(f"CIFAR-10 JPEG folder not found at {CIFAR_JPEG} (see ../shared/data/README.md)")
    return CIFAR_JPEG


def write_recipe(folder: Path, text: str, name: str = "r.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path
