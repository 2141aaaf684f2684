"""Dense training: artifact and manifest, exact resume from train.state.pt, up-to-date skip, evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cplitool.toolchain.artifacts import load_artifact
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.train import fit as fit_module
from cplitool.toolchain.train.optim import lr_factor
from cplitool.toolchain.train.stage import evaluate_model, train_dense
from tests.conftest import REPO, digits_recipe_text, write_recipe

STAGES = """
[train]
epochs = 2
lr = 0.05
max_steps = 6
"""


def small_recipe(folder: Path, name: str = "small"):  # type: ignore[no-untyped-def]
    return load_recipe(write_recipe(folder, digits_recipe_text(name, STAGES), f"{name}.toml"))


def test_train_dense_writes_artifact_and_manifest(in_tmp: Path) -> None:
    recipe = small_recipe(in_tmp)
    metrics = train_dense(recipe)
    run = RunDir.for_recipe(recipe)
    entry = run.stage("train")
    assert entry is not None and entry["status"] == "done" and entry["artifact"] == "dense.pt"
    assert entry["section_hash"] == recipe.section_hash("run", "model", "data", "train")
    assert metrics["epochs"] == 2 and entry["metrics"]["best"]["top1"] == metrics["best"]["top1"]
    assert not run.file("train.state.pt").exists()  # removed once dense.pt is written
    _model, info = load_artifact(run.file("dense.pt"))
    assert info.arch == "quick_vgg" and info.metrics["top1"] == metrics["best"]["top1"]
    assert metrics["best"]["top1"] > 15.0  # 12 steps already beat chance (10%)
    evaluated = evaluate_model(recipe, "dense")
    assert evaluated["top1"] == pytest.approx(metrics["best"]["top1"])
    assert evaluated["samples"] == 360


def test_resume_continues_exactly_where_the_run_stopped(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    train_dense(small_recipe(tmp_path / "a"))  # uninterrupted reference
    reference = torch.load(tmp_path / "a" / "runs" / "small" / "dense.pt", weights_only=True)["state_dict"]

    monkeypatch.chdir(tmp_path / "b")
    recipe = small_recipe(tmp_path / "b")
    real_epoch = fit_module.train_one_epoch

    def killed_in_epoch_2(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs["label"].startswith("epoch 2/"):
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train_one_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_dense(recipe)
    run = RunDir.for_recipe(recipe)
    assert run.file("train.state.pt").exists() and not run.file("dense.pt").exists()
    assert run.stage("train") is None

    resumed_epochs = []
    monkeypatch.setattr(
        fit_module, "train_one_epoch", lambda *a, **k: resumed_epochs.append(k["label"]) or real_epoch(*a, **k)
    )
    metrics = train_dense(recipe)
    assert resumed_epochs == ["epoch 2/2"]  # epoch 1 was not trained again
    assert metrics["epochs"] == 2
    resumed = torch.load(run.file("dense.pt"), weights_only=True)["state_dict"]
    assert all(torch.equal(resumed[k], v) for k, v in reference.items())  # same batches, same weights


def test_state_from_other_settings_is_not_resumed(in_tmp: Path) -> None:
    recipe = small_recipe(in_tmp)
    state = RunDir.for_recipe(recipe).file("train.state.pt")
    torch.save({"key": "other", "epoch": 0}, state)
    assert train_dense(recipe)["epochs"] == 2


def test_up_to_date_dense_model_is_not_trained_again(in_tmp: Path, monkeypatch) -> None:
    recipe = small_recipe(in_tmp)
    first = train_dense(recipe)
    calls = []
    real_fit = fit_module.fit
    monkeypatch.setattr("cplitool.toolchain.train.stage.fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    assert train_dense(recipe) == first and calls == []
    train_dense(recipe, force=True)
    assert calls == [1]
    changed = load_recipe(recipe.source, {"train": {"lr": 0.01}})
    train_dense(changed)  # a changed train section makes dense.pt stale
    assert calls == [1, 1]


def test_batch_larger_than_the_training_set(in_tmp: Path) -> None:
    path = write_recipe(in_tmp, digits_recipe_text("big", STAGES), "big.toml")
    with pytest.raises(UsageError, match=r"data.batch_size: 64 is larger than data.train_subset \(10\)"):
        load_recipe(path, {"data": {"train_subset": 10}})  # known from the recipe: refused before any work
    recipe = load_recipe(path, {"data": {"batch_size": 2000}})  # digits has 1,437 training images
    with pytest.raises(UsageError, match=r"data.batch_size: 2000 is larger than the training set"):
        train_dense(recipe)


def test_schedules() -> None:
    assert lr_factor(0, 100, 0, "constant") == 1.0
    assert lr_factor(0, 100, 0, "cosine") == 1.0 and lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)  # warm-up
    assert lr_factor(0, 100, 0, "onecycle") == pytest.approx(0.04)
    assert lr_factor(30, 100, 0, "onecycle") == pytest.approx(1.0)
    assert lr_factor(99, 100, 0, "onecycle") < 0.01


@pytest.mark.slow
def test_quickstart_reaches_95_percent(in_tmp: Path, cli) -> None:
    """The README's promise: `cplitool train recipes/quickstart.toml` gets >= 95% top-1 on digits."""
    result = cli("train", REPO / "recipes" / "quickstart.toml")
    assert result.code == 0, result.err
    entry = RunDir(in_tmp / "runs" / "quickstart").stage("train")
    assert entry is not None and entry["metrics"]["best"]["top1"] >= 95.0
    evaluated = cli("eval", REPO / "recipes" / "quickstart.toml", "--json")
    assert evaluated.code == 0
    assert '"top1"' in evaluated.out


def test_zero_epochs_reports_the_model_as_it_came(tmp_path: Path) -> None:
    from cplitool.toolchain.data import build_split
    from cplitool.toolchain.models import create_model
    from cplitool.toolchain.recipe.sections import DataSection, FinetuneSection
    from cplitool.toolchain.train.fit import fit

    data = DataSection(name="digits", batch_size=64)
    result = fit(
        create_model("quick_vgg"),
        FinetuneSection(epochs=0),
        data,
        build_split(data, "train", True),
        build_split(data, "val", False),
        torch.device("cpu"),
        tmp_path / "state.pt",
        "key",
    )
    assert result.history == [] and result.best["epoch"] == 0 and result.best["samples"] == 360
    assert not (tmp_path / "state.pt").exists()
