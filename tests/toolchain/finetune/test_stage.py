from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cplitool.toolchain.artifacts import load_artifact
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.finetune.stage import STATE_FILE, finetune_key, finetune_stage
from cplitool.toolchain.io import safe_load, sha256_file
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.rundir import RunDir, release_all
from cplitool.toolchain.train.stage import evaluate_model
from tests.toolchain.finetune.digits_run import digits_recipe, pruned_run


def test_finetune_recovers_accuracy_and_keeps_the_plan(in_tmp: Path) -> None:
    recipe = pruned_run(in_tmp)
    run = RunDir.for_recipe(recipe)
    before = evaluate_model(recipe, "pruned")["top1"]
    metrics = finetune_stage(recipe)

    model, info = load_artifact(run.file("finetuned.pt"))
    _, pruned_info = load_artifact(run.file("pruned.pt"))
    assert info.plan == pruned_info.plan and info.plan["method"] == "l1"
    assert model.features[0].out_channels == info.plan["stages"][0]["keep"] < 32
    assert metrics["best"]["top1"] > before  # fine-tuning the l1-pruned model helps
    assert evaluate_model(recipe, "finetuned")["top1"] == pytest.approx(metrics["best"]["top1"])
    entry = run.stage("finetune")
    assert entry is not None and entry["status"] == "done" and entry["processes"] == 1
    assert entry["section_hash"] == finetune_key(recipe, sha256_file(run.file("pruned.pt")))
    assert not run.file(STATE_FILE).exists()

    stamp = run.file("finetuned.pt").stat().st_mtime_ns
    assert finetune_stage(recipe) == entry["metrics"]  # up to date: nothing redone
    assert run.file("finetuned.pt").stat().st_mtime_ns == stamp
    finetune_stage(recipe, force=True)
    assert run.file("finetuned.pt").stat().st_mtime_ns != stamp


def test_finetune_without_a_pruned_model_says_what_to_run(in_tmp: Path) -> None:
    recipe = load_recipe(digits_recipe(in_tmp))
    with pytest.raises(UsageError, match="cplitool prune"):
        finetune_stage(recipe)


def test_full_disk_leaves_earlier_artifacts_intact(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = pruned_run(in_tmp, {"finetune": {"epochs": 1, "max_steps": 2}})
    run = RunDir.for_recipe(recipe)
    before = {p.name: p.read_bytes() for p in run.path.iterdir()}
    real_replace = os.replace

    def full(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name in ("finetuned.pt", STATE_FILE):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(CplitoolError, match=r"No space left on device.*earlier files are left as they were"):
        finetune_stage(recipe)
    after = {p.name: p.read_bytes() for p in run.path.iterdir()}
    assert after == before  # no finetuned.pt, no temporary files, manifest and artifacts unchanged


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cplitool.cli.app", *args]


def test_killed_finetune_continues_from_its_last_epoch(in_tmp: Path) -> None:
    sets = ["--set", "finetune.epochs=6", "--set", "finetune.max_steps=4"]
    recipe = pruned_run(in_tmp, {"finetune": {"epochs": 6, "max_steps": 4}})
    state = RunDir(recipe.run_dir).file(STATE_FILE)
    release_all()  # the run's lock, held by this process since pruned_run, goes to the subprocesses
    first = subprocess.Popen(
        cli("finetune", str(recipe.source), *sets), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not state.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert state.exists(), "the first run ended before writing its first epoch's state"
    done = safe_load(state)["epoch"] + 1  # epochs finished before the kill
    assert done < 6

    second = subprocess.run(cli("finetune", str(recipe.source), *sets), capture_output=True, text=True, check=True)
    log = second.stdout + second.stderr
    assert f"resuming from {STATE_FILE}: epoch {done + 1} of 6" in log
    assert f"epoch {done}/6 " not in log and "epoch 6/6 " in log
    entry = RunDir.for_recipe(recipe).stage("finetune")
    assert entry is not None and entry["metrics"]["epochs"] == 6 and not state.exists()
