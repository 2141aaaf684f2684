"""Run directories: manifest entries, staleness, runs/latest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import write_recipe
from toolchain.errors import UsageError
from toolchain.recipe import load_recipe
from toolchain.rundir import RunDir


def test_for_recipe_records_the_recipe_and_marks_latest(in_tmp: Path) -> None:
    recipe = load_recipe(write_recipe(in_tmp, "[train]\nepochs = 2\n", "exp.toml"))
    run = RunDir.for_recipe(recipe)
    assert run.path == in_tmp / "runs" / "exp"
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["recipe"]["source"] == str(recipe.source)
    assert manifest["recipe"]["resolved"]["train"]["epochs"] == 2
    link = in_tmp / "runs" / "latest"
    assert link.is_symlink() and os.readlink(link) == "exp"  # relative: the tree can move
    assert RunDir.resolve(None).path == run.path
    assert RunDir.resolve(run.path).path == run.path
    assert RunDir.resolve(recipe.source).path == run.path
    assert run.recipe().train.epochs == 2


def test_record_and_up_to_date(in_tmp: Path) -> None:
    run = RunDir.for_recipe(load_recipe(write_recipe(in_tmp, "")))
    artifact = run.file("dense.pt")
    artifact.write_bytes(b"weights")
    entry = run.record("train", artifact, "abc", {"top1": 90.0}, epochs=3)
    assert entry["artifact"] == "dense.pt" and entry["epochs"] == 3 and len(entry["sha256"]) == 64
    assert run.stage("train")["metrics"] == {"top1": 90.0}  # type: ignore[index]
    assert run.artifact("train") == artifact
    assert run.up_to_date("train", "abc")
    assert not run.up_to_date("train", "other")  # the recipe section changed
    assert not run.up_to_date("prune", "abc")  # never ran
    artifact.write_bytes(b"edited")
    assert not run.up_to_date("train", "abc")  # the file changed on disk
    run.record("prune", None, "h", {}, status="failed")
    assert run.artifact("prune") is None


def test_latest_follows_the_last_run_and_works_from_another_cwd(tmp_path: Path, monkeypatch) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    a = load_recipe(write_recipe(recipes, "", "a.toml"))
    b = load_recipe(write_recipe(recipes, '[run]\ndir = "../elsewhere/b"\n', "b.toml"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run_a = RunDir.for_recipe(a)
    run_b = RunDir.for_recipe(b)  # its run dir lies outside work/, latest still lives in work/runs
    assert run_b.path == tmp_path / "elsewhere" / "b"
    assert RunDir.resolve(None).path == run_b.path
    RunDir.for_recipe(a)
    assert RunDir.resolve(None).path == run_a.path
    moved = tmp_path / "moved"
    os.rename(work, moved)  # the relative link survives moving the tree
    monkeypatch.chdir(moved)
    assert RunDir.resolve(None).path == moved / "runs" / "a"


def test_resolve_errors(in_tmp: Path) -> None:
    with pytest.raises(UsageError, match="runs/latest does not exist"):
        RunDir.resolve(None)
    with pytest.raises(UsageError, match="neither a recipe"):
        RunDir.resolve(in_tmp)


def test_unreadable_manifest_is_a_clear_error(in_tmp: Path) -> None:
    from toolchain.errors import CplitoolError

    run = RunDir.for_recipe(load_recipe(write_recipe(in_tmp, "")))
    (run.path / "manifest.json").write_text("{not json")
    with pytest.raises(CplitoolError, match="unreadable manifest"):
        run.stage("train")
