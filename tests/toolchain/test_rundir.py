"""Run directories: manifest entries, staleness, runs/latest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.rundir import RunDir
from tests.conftest import REPO, digits_recipe_text, write_recipe


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
    with pytest.raises(UsageError, match=r"runs/latest does not exist.*`cplitool init NAME`"):
        RunDir.resolve(None)
    with pytest.raises(UsageError, match="neither a recipe"):
        RunDir.resolve(in_tmp)


def test_unreadable_manifest_is_a_clear_error(in_tmp: Path) -> None:
    from cplitool.toolchain.errors import CplitoolError

    run = RunDir.for_recipe(load_recipe(write_recipe(in_tmp, "")))
    (run.path / "manifest.json").write_text("{not json")
    with pytest.raises(CplitoolError, match="unreadable manifest"):
        run.stage("train")


def _python(code: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


RECORD = """
import sys
from cplitool.toolchain.rundir import RunDir
run = RunDir(sys.argv[1])
for j in range(int(sys.argv[3])):
    run.record(f"{sys.argv[2]}-{j}", None, "h", {"j": j})
"""


def test_racing_processes_lose_no_manifest_update(tmp_path: Path) -> None:
    """4 processes x 40 records into one manifest at once: all 160 entries survive. Without the lock
    around record's read-modify-write (locked() made a no-op) most are lost."""
    run = tmp_path / "runs" / "race"
    run.mkdir(parents=True)
    procs = [_python(RECORD, str(run), f"p{i}", "40", cwd=tmp_path) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert len(stages) == 160
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


HOLD = """
import sys, time
from cplitool.toolchain.rundir import RunDir
RunDir(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(run: Path, seconds: float, cwd: Path) -> subprocess.Popen[str]:
    holder = _python(HOLD, str(run), str(seconds), cwd=cwd)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_second_writer_exits_at_once_with_no_wait(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, digits_recipe_text("busy", "[train]\nepochs = 1\nmax_steps = 1\n"))
    holder = _hold(in_tmp / "runs" / "busy", 120, in_tmp)
    try:
        result = cli("train", recipe, "--no-wait")
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 1
    assert (
        f"run directory {in_tmp / 'runs' / 'busy'} is in use by another cplitool command (pid {holder.pid})"
        in result.err
    )
    assert not (in_tmp / "runs" / "busy" / "dense.pt").exists()


def test_second_writer_waits_with_a_message(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, digits_recipe_text("queued", "[train]\nepochs = 1\nmax_steps = 1\n"))
    holder = _hold(in_tmp / "runs" / "queued", 2, in_tmp)
    result = cli("train", recipe)
    holder.wait()
    assert result.code == 0, result.err
    assert "waiting:" in result.err and "is in use by another cplitool command" in result.err
    assert (in_tmp / "runs" / "queued" / "dense.pt").is_file()


def test_temp_files_of_a_killed_command_are_removed_by_the_next(in_tmp: Path) -> None:
    recipe = load_recipe(write_recipe(in_tmp, ""))
    stale = [in_tmp / "runs" / "r" / ".train.state.pt.k3j2h1.tmp", in_tmp / "runs" / "r" / "onnx" / ".dense.onnx.a.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    RunDir.open(recipe)
    assert not any(p.exists() for p in stale)


def test_nothing_is_written_before_work_starts(in_tmp: Path) -> None:
    """open() locks but writes nothing; a command that stops there leaves no run directory behind."""
    from cplitool.toolchain.rundir import release_all

    RunDir.open(load_recipe(write_recipe(in_tmp, "")))
    assert (in_tmp / "runs" / "r" / ".lock").exists()
    release_all()
    assert sorted(p.name for p in in_tmp.iterdir()) == ["r.toml"]


def test_runs_latest_failure_is_a_warning(in_tmp: Path, capsys) -> None:
    (in_tmp / "runs" / "latest").mkdir(parents=True)
    (in_tmp / "runs" / "latest" / "keep").write_text("a folder, not a link")
    run = RunDir.for_recipe(load_recipe(write_recipe(in_tmp, "")))
    assert "warning: runs/latest not updated" in capsys.readouterr().err
    assert (run.path / "manifest.json").is_file()
