"""Lay out the installed package for mypy: build/typecheck/cplitool/, links into the clone's folders.

mypy finds modules on the file system and cannot follow pyproject's package-dir (toolchain/ installs as
cplitool.toolchain, deploy/ as cplitool.deploy), and it does not run the import hook of an editable install.
So `make lint` builds this view first: every entry of cplitool/ and each mapped folder, linked under one
cplitool/ folder. mypy reports paths inside the view; build/typecheck/cplitool/toolchain/x.py is toolchain/x.py.

    python tools/typecheck_view.py [ROOT]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VIEW = Path("build") / "typecheck"


def build_view(root: Path) -> Path:
    """(Re)create VIEW/cplitool under `root`; returns it."""
    folders = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    top = root / VIEW / "cplitool"
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True)
    links = {p.name: p for p in (root / folders["cplitool"]).iterdir() if p.name != "__pycache__"}
    links |= {name.removeprefix("cplitool."): root / folder for name, folder in folders.items() if name != "cplitool"}
    for name, target in links.items():
        (top / name).symlink_to(os.path.relpath(target, top), target_is_directory=target.is_dir())
    return top


if __name__ == "__main__":
    build_view(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
