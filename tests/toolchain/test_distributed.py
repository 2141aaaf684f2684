from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cplitool.toolchain.artifacts import load_artifact
from cplitool.toolchain.distributed import distributed_session
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.recipe.sections import RunSection
from cplitool.toolchain.rundir import RunDir, release_all
from tests.toolchain.finetune.digits_run import digits_recipe, pruned_run


def test_a_single_process_gets_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed_session(RunSection()) as world:
        assert world == 1 and not torch.distributed.is_initialized()


def test_a_partial_torchrun_environment_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UsageError, match="launch with torchrun"), distributed_session(RunSection()):
        pass


def torchrun(*args: str) -> str:
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher, "torchrun not found beside the interpreter"
    cmd = [launcher, "--standalone", "--nproc_per_node=2", "-m", "cplitool.cli.app", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_two_gloo_processes_finetune_on_digits(in_tmp: Path) -> None:
    """One epoch of DDP fine-tuning with distillation: rank 0 alone logs and writes the artifact."""
    recipe = pruned_run(in_tmp, {"finetune": {"epochs": 1, "max_steps": 0}})
    run = RunDir(recipe.run_dir)
    release_all()  # the run's lock, held by this process since pruned_run, goes to the torchrun processes
    log = torchrun("finetune", str(recipe.source), "--set", "finetune.epochs=1", "--set", "finetune.max_steps=0")
    assert log.count("distributed: 2 processes, gloo backend") == 1
    assert log.count("epoch 1/1 ") == 1 and log.count("fine-tuned model: top-1") == 1  # rank 0 only
    entry = run.stage("finetune")
    assert entry is not None and entry["status"] == "done" and entry["processes"] == 2
    _, info = load_artifact(run.file("finetuned.pt"))
    assert info.metrics["top1"] == entry["metrics"]["best"]["top1"]
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == [".lock"]  # no stray temporary files


@pytest.mark.slow
def test_two_gloo_processes_train_on_digits(in_tmp: Path) -> None:
    path = digits_recipe(in_tmp)
    log = torchrun("train", str(path), "--set", "train.epochs=1")
    assert log.count("distributed: 2 processes, gloo backend") == 1 and log.count("epoch 1/1 ") == 1
    run = RunDir.for_recipe(load_recipe(path, {"train": {"epochs": 1}}))
    assert run.artifact("train") is not None and not run.file("train.state.pt").exists()
