from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cplitool.cli.pipeline_cmds import STAGES
from cplitool.toolchain.errors import CplitoolError, UsageError
from cplitool.toolchain.io import sha256_file
from cplitool.toolchain.pipeline.runner import Outcome, StageSpec, run_pipeline
from cplitool.toolchain.recipe import Recipe, load_recipe
from cplitool.toolchain.rundir import RunDir
from tests.toolchain.finetune.digits_run import digits_recipe

# train, prune (l1: the real stage, data-free and fast), finetune.
CHAIN = STAGES[:3]
FAST = {"train": {"epochs": 1, "max_steps": 5}, "finetune": {"epochs": 2, "max_steps": 3}, "data": {"val_subset": 100}}
ARTIFACTS = ("dense.pt", "pruned.pt", "finetuned.pt")


def recipe(folder: Path, **changes: dict[str, Any]) -> Recipe:
    overrides = {k: {**v, **changes.get(k, {})} for k, v in FAST.items()}
    return load_recipe(digits_recipe(folder), {**changes, **overrides})


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [o.status for o in outcomes]


def stamps(r: Recipe) -> list[int]:
    return [(r.run_dir / name).stat().st_mtime_ns for name in ARTIFACTS]


def test_a_second_run_skips_every_stage(in_tmp: Path) -> None:
    r = recipe(in_tmp)
    assert statuses(run_pipeline(r, CHAIN)) == ["ran"] * 3
    before = stamps(r)
    assert statuses(run_pipeline(r, CHAIN)) == ["up to date"] * 3
    assert stamps(r) == before


def test_a_changed_section_redoes_its_stage_and_the_later_ones(in_tmp: Path) -> None:
    run_pipeline(recipe(in_tmp), CHAIN)
    assert statuses(run_pipeline(recipe(in_tmp, finetune={"lr": 0.02}), CHAIN)) == ["up to date"] * 2 + ["ran"]
    assert statuses(run_pipeline(recipe(in_tmp, train={"lr": 0.02}), CHAIN)) == ["ran"] * 3


def test_from_and_force_redo_stages_that_are_up_to_date(in_tmp: Path) -> None:
    r = recipe(in_tmp)
    run_pipeline(r, CHAIN)
    dense, pruned, finetuned = stamps(r)
    assert statuses(run_pipeline(r, CHAIN, start="finetune")) == ["up to date", "up to date", "ran"]
    assert stamps(r)[:2] == [dense, pruned] and stamps(r)[2] != finetuned
    assert statuses(run_pipeline(r, CHAIN, force=True)) == ["ran"] * 3
    assert stamps(r)[0] != dense  # --force trains the dense model again
    with pytest.raises(UsageError, match="--from tune: expected one of train, prune, finetune"):
        run_pipeline(r, CHAIN, start="tune")


def test_a_changed_upstream_artifact_makes_the_later_stages_stale(in_tmp: Path) -> None:
    r = recipe(in_tmp)
    run_pipeline(r, CHAIN)
    with open(r.run_dir / "pruned.pt", "ab") as f:  # someone replaced the pruned model
        f.write(b"\0")
    assert statuses(run_pipeline(r, CHAIN)) == ["up to date", "ran", "ran"]


def test_a_missing_stage_is_not_available_and_blocks_what_needs_it(in_tmp: Path) -> None:
    chain = (CHAIN[0], replace(CHAIN[1], entry="cplitool.toolchain.no_such_stage:prune_stage"), CHAIN[2])
    outcomes = run_pipeline(recipe(in_tmp), chain)
    assert statuses(outcomes) == ["ran", "not available", "blocked"]
    assert outcomes[2].detail == "needs prune" and not (recipe(in_tmp).run_dir / "finetuned.pt").exists()


def test_a_stage_whose_module_fails_to_import_is_an_error(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / "broken_stage.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(in_tmp))
    broken = StageSpec("train", "broken_stage:train", ("train",))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        run_pipeline(recipe(in_tmp), (broken,))
    sys.modules.pop("broken_stage", None)


def test_ctrl_c_in_finetune_keeps_the_manifest_and_the_next_run_resumes_there(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cplitool.toolchain.train.fit as fit_module

    r = recipe(in_tmp)
    run_pipeline(r, CHAIN[:2])
    real_evaluate, calls = fit_module.evaluate, []

    def interrupted(*args: Any, **kwargs: Any) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C during epoch 2, after epoch 1's state file was written
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(fit_module, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(r, CHAIN)
    manifest = json.loads((r.run_dir / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"train", "prune"} and set(manifest["pipeline"]) == {"train", "prune"}
    assert (r.run_dir / "finetune.state.pt").exists()

    monkeypatch.setattr(fit_module, "evaluate", real_evaluate)
    capsys.readouterr()
    assert statuses(run_pipeline(r, CHAIN)) == ["up to date", "up to date", "ran"]
    assert "resuming from finetune.state.pt: epoch 2 of 2" in capsys.readouterr().err


def test_a_full_disk_while_recording_is_recovered_by_the_next_run(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = recipe(in_tmp)
    run_pipeline(r, CHAIN)
    manifest = (r.run_dir / "manifest.json").read_text()
    real_replace = os.replace

    def full(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "manifest.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    changed = recipe(in_tmp, finetune={"lr": 0.02})
    with pytest.raises(CplitoolError, match=r"manifest\.json: No space left on device"):
        run_pipeline(changed, CHAIN)
    assert (r.run_dir / "manifest.json").read_text() == manifest  # the old manifest, whole
    monkeypatch.setattr(os, "replace", real_replace)
    # The new finetuned.pt is on disk but not recorded: the next run fine-tunes again and records it.
    assert statuses(run_pipeline(changed, CHAIN)) == ["up to date", "up to date", "ran"]
    entry = RunDir(r.run_dir).stage("finetune")
    assert entry is not None and entry["sha256"] == sha256_file(r.run_dir / "finetuned.pt")


def test_an_unwritable_run_directory_is_one_clear_line(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cplitool.cli.app import main

    path = digits_recipe(in_tmp)
    (in_tmp / "runs").mkdir()
    (in_tmp / "runs" / "ft").write_text("a file where the run directory should be\n")
    monkeypatch.setattr(sys, "argv", ["cplitool", "run", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "error: cannot create run directory" in err and str(in_tmp / "runs" / "ft") in err
    assert "Traceback" not in err and (in_tmp / "runs" / "ft").read_text().startswith("a file")
