"""One import package, cplitool: the wheel holds nothing else, `cplitool init` works from it, and a user's own
deploy.py or toolchain/ in the working directory shadows nothing (editable install and wheel alike)."""

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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# pyproject.toml's package-dir: the folder each installed package comes from.
FOLDERS = {"cplitool": "cplitool", "cplitool.toolchain": "toolchain", "cplitool.deploy": "deploy"}
# Imports a user's shadowing files would break if cplitool still installed bare `toolchain` and `deploy`.
IMPORTS = "import cplitool, cplitool.toolchain.errors, cplitool.deploy.runners.base, cplitool.cli.app"


def user_folder(where: Path) -> Path:
    """A deployment engineer's directory with their own deploy.py and toolchain/ package, both failing on import."""
    where.mkdir()
    (where / "deploy.py").write_text("raise RuntimeError('the user deploy.py was imported')\n")
    (where / "toolchain").mkdir()
    (where / "toolchain" / "__init__.py").write_text("raise RuntimeError('the user toolchain/ was imported')\n")
    return where


def python(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_package_list_matches_the_tree() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == FOLDERS
    on_disk = {
        ".".join((installed, *init.parent.relative_to(REPO / folder).parts))
        for installed, folder in FOLDERS.items()
        for init in (REPO / folder).rglob("__init__.py")
    }
    assert sorted(setuptools["packages"]) == sorted(on_disk)


def test_a_users_deploy_py_shadows_nothing(tmp_path: Path) -> None:
    work = user_folder(tmp_path / "work")
    done = python(f"{IMPORTS}; print(cplitool.deploy.__file__)", work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(REPO / "deploy"))
    version = subprocess.run([sys.executable, "-m", "cplitool", "--version"], cwd=work, capture_output=True, text=True)
    assert version.stdout.strip() == f"cplitool {__version__}", version.stderr


@pytest.mark.parametrize("bare", ["toolchain", "deploy"])
def test_the_bare_names_are_not_installed(tmp_path: Path, bare: str) -> None:
    done = python(f"import {bare}", tmp_path)
    assert done.returncode != 0 and f"No module named '{bare}'" in done.stderr


@pytest.mark.slow
def test_wheel_contents_and_init_from_the_installed_wheel(tmp_path: Path) -> None:
    wheels, site, src = (tmp_path / d for d in ("wheels", "site", "src"))
    # a copy of the source, so the build's own files (build/, *.egg-info) never land in the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "-w", str(wheels), "--no-deps", "--no-build-isolation"], check=True)
    (wheel,) = wheels.glob("cplitool-*.whl")
    assert wheel.name.startswith(f"cplitool-{__version__}-")  # the one version source reaches the metadata
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names} == {"cplitool", f"cplitool-{__version__}.dist-info"}
    wanted = {"cplitool/cli/app.py", "cplitool/toolchain/recipe/templates/digits.toml"}
    assert wanted | {"cplitool/deploy/baselines/cpu.json"} <= names
    entry_points = zipfile.ZipFile(wheel).read(f"cplitool-{__version__}.dist-info/entry_points.txt").decode()
    assert "cplitool = cplitool.cli.app:main" in entry_points
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    work = user_folder(tmp_path / "work")
    env = {**os.environ, "PYTHONPATH": str(site)}
    init = subprocess.run(
        [sys.executable, "-m", "cplitool", "init", "mine"], cwd=work, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert 'name = "quick_vgg"' in (work / "mine.toml").read_text()
    where = python(f"{IMPORTS}; import cplitool.toolchain.recipe.init as m; print(m.__file__)", work, env)
    assert where.stdout.startswith(str(site)), where.stderr  # the installed copy, not the clone's


def test_a_checkout_imports_without_being_installed(tmp_path: Path) -> None:
    """An offline GPU host runs benchmarks/gpu_check.py from a checkout with its system python: with the site
    (and so the editable install's finder) off, the checkout on PYTHONPATH still gives cplitool.toolchain."""
    code = "import cplitool.toolchain.errors as e, cplitool.deploy; print(e.__file__)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == REPO / "toolchain" / "errors.py"
