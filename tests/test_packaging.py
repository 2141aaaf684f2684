"""The wheel carries the public API and the recipe templates: `cplitool init` works from an install, not a clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cplitool.toolchain import __version__
from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_contents_and_init_from_the_installed_wheel(tmp_path: Path) -> None:
    wheels, site, work, src = (tmp_path / d for d in ("wheels", "site", "work", "src"))
    # a copy of the source, so the build's own files (build/, *.egg-info) never land in the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "-w", str(wheels), "--no-deps", "--no-build-isolation"], check=True)
    (wheel,) = wheels.glob("cplitool-*.whl")
    assert wheel.name.startswith(f"cplitool-{__version__}-")  # the one version source reaches the metadata
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"cplitool/__init__.py", "toolchain/recipe/templates/digits.toml", "deploy/baselines/cpu.json"} <= names
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    init = subprocess.run(
        [sys.executable, "-m", "cplitool", "init", "mine"], cwd=work, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert 'name = "quick_vgg"' in (work / "mine.toml").read_text()
    where = subprocess.run(
        [sys.executable, "-c", "import cplitool.toolchain.recipe.init as m; print(m.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site))  # the templates came from the installed copy, not the clone
