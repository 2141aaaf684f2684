"""The committed fuzz corpus: recipe mutations (recipes.toml) and crafted checkpoints (checkpoints/, with
the expected error in checkpoints.toml), each run through the real CLI in-process.

For every case: the exit code (2 for bad input), no traceback, one error line naming the key or the file,
nothing written anywhere (the whole temporary tree is compared before and after; the working directory
sits two levels below it so `../..` escapes are seen), no code from a checkpoint executed, and the
checkpoint itself unchanged. Recipes that `check` accepts must also train without a traceback, writing
only into their own run directory.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DIGITS_HEAD

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).parent
RECIPES = tomllib.loads((HERE / "recipes.toml").read_text(encoding="utf-8"))
CHECKPOINTS: dict[str, str] = tomllib.loads((HERE / "checkpoints.toml").read_text(encoding="utf-8"))
BASE = DIGITS_HEAD.format(name="fuzz", run_extra="") + "[train]\nepochs = 1\nmax_steps = 1\n"
TINY = ["--set", "train.epochs=1", "--set", "train.max_steps=1", "--set", "data.batch_size=64"]
MARKER = "pwned_by_checkpoint"


@pytest.fixture(autouse=True)
def _build_the_cli_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer rebuilds its click command on every call (~0.3 s); the corpus makes hundreds of calls."""
    import typer.main

    monkeypatch.setattr(typer.main, "get_command", _cached_command(typer.main.get_command))


@functools.cache
def _cached_command(build: Any) -> Any:
    return functools.cache(build)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, two levels inside the temporary tree that is snapshotted."""
    folder = tmp_path / "a" / "b" / "work"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    monkeypatch.delenv("CPLITOOL_FUZZ_UNSET", raising=False)
    return folder


def fill(text: str, tmp: Path, recipe: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{recipe}", str(recipe))


def overrides(case: dict[str, Any], tmp: Path, recipe: Path) -> list[str]:
    return [arg for s in case.get("set", []) for arg in ("--set", fill(s, tmp, recipe))]


def assert_one_clean_error(result: Any, code: int, named: str) -> None:
    text = result.out + result.err
    assert result.code == code, text
    assert "Traceback" not in text, text
    assert result.err.count("error:") == 1, text
    assert named in result.err, text


@pytest.mark.parametrize("case", RECIPES["case"], ids=[c["id"] for c in RECIPES["case"]])
def test_recipe_mutation(case: dict[str, Any], work: Path, tmp_path: Path, cli) -> None:
    recipe = work / "r.toml"
    recipe.write_text(case.get("text", BASE), encoding="utf-8")
    before = tree(tmp_path)
    for command in ("check", "train"):
        result = cli(command, recipe, *overrides(case, tmp_path, recipe))
        assert_one_clean_error(result, case.get("code", 2), case["key"])
        assert str(recipe) in result.err or "--set" in result.err  # the message names the file
        assert tree(tmp_path) == before, f"{command} wrote files"


@pytest.mark.parametrize("case", RECIPES["valid"], ids=[c["id"] for c in RECIPES["valid"]])
def test_recipe_check_accepts_trains_cleanly(case: dict[str, Any], work: Path, tmp_path: Path, cli) -> None:
    recipe = work / case.get("file", "r.toml")
    recipe.write_text(case.get("text", BASE), encoding="utf-8")
    sets = overrides(case, tmp_path, recipe)
    run = Path(fill(case["run"], tmp_path, recipe))
    run = run if run.is_absolute() else work / "runs" / run
    check = cli("check", recipe, *sets)
    assert check.code == 0, check.err
    assert f"run directory {run}" in check.out  # shown resolved
    before = tree(tmp_path)
    result = cli("train", recipe, *sets, *TINY)
    assert result.code == 0, result.out + result.err
    assert "Traceback" not in result.err
    allowed = {run, *run.parents, work / "runs", work / "runs" / "latest"}  # the run, folders made for it
    new = {tmp_path / p for p in tree(tmp_path) - before}
    assert new and all(p in allowed or run in p.parents for p in new), sorted(map(str, new))
    assert (run / "dense.pt").is_file() and (work / "runs" / "latest").resolve() == run
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", list(CHECKPOINTS), ids=list(CHECKPOINTS))
def test_crafted_checkpoint(name: str, work: Path, tmp_path: Path, cli) -> None:
    recipe = work / "r.toml"
    recipe.write_text(BASE, encoding="utf-8")
    file = work / name
    shutil.copyfile(HERE / "checkpoints" / name, file)
    content = file.read_bytes()
    before = tree(tmp_path)
    expected = CHECKPOINTS[name]
    result = cli("eval", recipe, "--artifact", file)
    if expected:
        assert_one_clean_error(result, 2, f"{file}: ")
        assert expected in result.err, result.err
    else:
        assert result.code == 0 and "top-1" in result.out, result.out + result.err
    result = cli("prune", recipe, "--set", f'model.checkpoint="{file}"')
    assert_one_clean_error(result, 2, f"{file}: ")  # as a dense checkpoint for the recipe's model
    assert tree(tmp_path) == before, "a failing or read-only command wrote files"
    assert not (work / MARKER).exists(), "code in the checkpoint ran"
    assert file.read_bytes() == content  # a user's checkpoint is never modified


def test_corpus_size() -> None:
    """The issue asks for at least 60 recipe mutations and 25 crafted checkpoints."""
    assert len(RECIPES["case"]) >= 60 and len(CHECKPOINTS) >= 25
