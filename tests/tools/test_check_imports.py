"""tools/check_imports.py: the layering read from the docs, the cycle check, and this repository passing both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, load_script

check = load_script(REPO / "tools" / "check_imports.py")

RULES = """# Development

## Import rules

```text
app.cli app.__main__   # top
app                    # middle
app.low                # bottom
never: app -> app.low.secret
```
"""
FILES = {
    "app/__init__.py": "",
    "app/__main__.py": "from app.cli import run\n",
    "app/cli/__init__.py": "import app.api\nrun = 1\n",
    "app/api.py": "from app.low import secret\n\ndef f():\n    from app.cli import run\n",
    "low/__init__.py": "",
    "low/a.py": "from app.low.b import g\n",
    "low/b.py": "def g():\n    from app.low import a\n",
    "low/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.api import f\n",
    "low/secret.py": "",
}


def tree(root: Path, files: dict[str, str]) -> Path:
    (root / "pyproject.toml").write_text('[tool.setuptools]\npackage-dir = { "app" = "app", "app.low" = "low" }\n')
    (root / "docs").mkdir()
    (root / "docs" / "development.md").write_text(RULES)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_modules_are_named_as_installed(tmp_path: Path) -> None:
    assert set(check.modules(tree(tmp_path, FILES))) == {
        "app", "app.__main__", "app.cli", "app.api", "app.low", "app.low.a", "app.low.b", "app.low.c",
        "app.low.secret",
    }  # fmt: skip


def test_layer_breaks_forbidden_imports_and_cycles_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check.main(["check_imports", str(tree(tmp_path, FILES))]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [
        "app/api.py:4: app.api imports app.cli, a layer above it (app.cli app.__main__)",
        "app/api.py:1: app.api imports app.low.secret; app never imports app.low.secret",
        "import cycle: app.api <-> app.cli",
        "import cycle: app.low.a <-> app.low.b",
    ]  # the TYPE_CHECKING import of low/c.py and the top layer's imports of lower ones are allowed
    assert lines[-1] == "check_imports: 9 modules, 8 imports, 4 problems"


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    clean = {**FILES, "app/api.py": "", "low/b.py": ""}
    assert check.main(["check_imports", str(tree(tmp_path, clean))]) == 0


def test_rules_need_the_block(tmp_path: Path) -> None:
    (tmp_path / "development.md").write_text("## Import rules\n\nnone here\n")
    with pytest.raises(SystemExit, match="no ```text block"):
        check.read_rules(tmp_path / "development.md")


def test_this_repository_keeps_its_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["check_imports", str(REPO)]) == 0, capsys.readouterr().out
