"""docs/recipes.md's reference is the schema rendered: regenerate it with `cplitool check --reference`."""

from __future__ import annotations

import dataclasses

from cplitool.toolchain.recipe.reference import constraint, render_reference
from cplitool.toolchain.recipe.sections import SECTIONS
from tests.conftest import REPO

START, END = "<!-- recipe-reference:start -->\n", "<!-- recipe-reference:end -->"


def test_docs_reference_matches_the_schema() -> None:
    doc = (REPO / "docs" / "recipes.md").read_text()
    assert START in doc and END in doc, "docs/recipes.md lacks the recipe-reference markers"
    embedded = doc.split(START, 1)[1].split(END, 1)[0]
    assert embedded.strip() == render_reference().strip(), (
        "docs/recipes.md's recipe reference is stale: replace the text between the markers with "
        "the output of `cplitool check --reference`"
    )


def test_reference_lists_every_key_of_every_section() -> None:
    text = render_reference()
    for name, cls in SECTIONS.items():
        assert f"### `[{name}]`" in text
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text


def test_constraints_are_rendered() -> None:
    assert constraint(int, {"min": 1}) == "int ≥ 1"
    assert constraint(float, {"min_exclusive": 0.0, "max": 1.0}) == "float in (0.0, 1.0]"
    assert constraint(float, {"min": 0.0, "max": 0.5}) == "float in [0.0, 0.5]"
    assert constraint(str, {"choices": ["sgd", "adamw"]}) == 'one of `"sgd"`, `"adamw"`'
    assert constraint(str, {"path": True}) == "path"


def test_cli_prints_the_reference(cli) -> None:
    result = cli("check", "--reference")
    assert result.code == 0
    assert result.out == render_reference()
