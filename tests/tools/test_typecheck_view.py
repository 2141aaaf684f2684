"""tools/typecheck_view.py: mypy's view of the installed layout holds every module of the package once."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import REPO, load_script

view = load_script(REPO / "tools" / "typecheck_view.py")
check = load_script(REPO / "tools" / "check_imports.py")


def test_the_view_holds_every_module_under_its_installed_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    for folder in ("cplitool", "toolchain", "deploy"):
        (tmp_path / folder).symlink_to(REPO / folder)
    top = view.build_view(tmp_path)
    files = [Path(d, f) for d, _, names in os.walk(top, followlinks=True) for f in names if f.endswith(".py")]
    seen = {".".join(("cplitool", *p.relative_to(top).with_suffix("").parts)).removesuffix(".__init__") for p in files}
    assert seen == set(check.modules(REPO))
    assert view.build_view(tmp_path) == top  # rebuilt in place
