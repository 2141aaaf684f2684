"""Shared fixtures: a temporary working directory per test (runs/ lands there), the CIFAR-10 JPEG root and
the real CLI entry point run in-process."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg"


def load_script(path: Path) -> ModuleType:
    """Import a script (benchmarks/, examples/) by path as the module named after its file; registered in
    sys.modules first, where dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _release_run_locks() -> Iterator[None]:
    """Stage functions called directly hold their run's lock as a command would; let it go after each test."""
    yield
    from cplitool.toolchain.rundir import release_all

    release_all()


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


# A user's own network as a module file would hold it: conv-bn-relu twice (one prunable pair), global pooling
# and a linear classifier, for the digits data (1x8x8). `tiny_factory` takes no num_classes.
TINY_NET = """
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def tiny_factory(width: int = 8) -> nn.Module:
    return TinyNet(num_classes=3, width=width)
"""


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`user_module(name, text=TINY_NET, folder=tmp_path)` writes a module file; it is forgotten from
    sys.modules afterwards, so modules of one name written by two tests never meet."""
    names: list[str] = []

    def write(name: str, text: str = TINY_NET, folder: Path = tmp_path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        path.write_text(text)
        names.append(name)
        importlib.invalidate_caches()
        return path

    yield write
    for name in names:
        sys.modules.pop(name, None)


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
    from cplitool.cli.app import main

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
