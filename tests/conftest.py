"""Shared fixtures: a temporary working directory per test (runs/ lands there), the CIFAR-10 JPEG root and
the real CLI entry point run in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run the real `cplitool` entry point in-process: `cli("check", "r.toml")` -> exit code, stdout, stderr."""
    from toolchain.cli.app import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["cplitool", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


DIGITS_HEAD = """
[run]
name = "{name}"
threads = 1{run_extra}
[model]
name = "quick_vgg"
[data]
name = "digits"
batch_size = 64
eval_batch_size = 512
"""


def digits_recipe_text(name: str, stages: str, run_extra: str = "") -> str:
    """A quick_vgg-on-digits recipe (one thread, offline) followed by the stage tables a test needs."""
    return DIGITS_HEAD.format(name=name, run_extra=f"\n{run_extra}" if run_extra else "") + stages
