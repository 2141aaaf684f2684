"""README.md is a short front page and docs/ holds the rest; neither may point outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_a_front_page() -> None:
    assert README.stat().st_size <= 12 * 1024, f"README.md is {README.stat().st_size} bytes; move detail into docs/"


def test_readme_starts_with_the_two_commands_and_the_makefile_has_them() -> None:
    head = "\n".join(README.read_text().splitlines()[:12])
    assert "make quickstart" in head and "make test" in head
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^quickstart:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_no_link_or_path_outside_the_repository(page: Path) -> None:
    """Users' clones have no ../shared: the method and notes must be written into docs/."""
    assert "../shared" not in page.read_text() and "/work/" not in page.read_text()


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name}: broken link {target}"


def test_readme_links_every_docs_page() -> None:
    text = README.read_text()
    for page in DOCS:
        assert f"docs/{page.name}" in text, f"README.md does not link docs/{page.name}"
