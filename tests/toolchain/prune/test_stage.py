"""The prune stage end to end on digits: artifact, report, manifest, CLI errors before sampling, and the
CI smoke version of the ablation (cpli beats random before fine-tuning at 50% MACs)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cplitool.cli.app import app
from cplitool.toolchain.artifacts import load_artifact
from cplitool.toolchain.data import build_split, make_loader
from cplitool.toolchain.prune.plan import make_plan
from cplitool.toolchain.prune.pruner import prune_model
from cplitool.toolchain.prune.solver import ridge_grid
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.recipe.sections import PruneSection
from cplitool.toolchain.rundir import RunDir
from cplitool.toolchain.train.loop import evaluate
from cplitool.toolchain.train.stage import train_dense
from tests.conftest import digits_recipe_text, write_recipe

STAGES = """
[train]
epochs = 8
lr = 0.05
schedule = "onecycle"
[prune]
num_images = 400
batch_size = 200
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A recipe whose run holds a briefly trained quick_vgg (dense.pt)."""
    folder = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        path = write_recipe(folder, digits_recipe_text("digits", STAGES, run_extra=f'dir = "{folder / "run"}"'))
        train_dense(load_recipe(path))
        yield path


def test_prune_stage_writes_artifact_report_and_manifest(trained: Path, in_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["prune", str(trained), "--set", "prune.method='cpli'"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "features.3" in result.output and "keep = output channels kept" in result.output
    run = RunDir(trained.parent / "run")
    entry = run.stage("prune")
    assert entry is not None and entry["status"] == "done"
    report = json.loads(run.file("prune_report.json").read_text())
    assert abs(report["macs_keep"] - 0.5) <= 0.01
    consumers = [r for r in report["layers"] if "err_after" in r]
    assert consumers and all(r["err_after"] <= r["err_before"] for r in consumers)
    # the searched ridge of each refit (null where the original weights were kept), from the default grid
    assert all(r["ridge"] is None or r["ridge"] in ridge_grid(1e-4) for r in consumers)
    assert any(r["ridge"] is not None for r in consumers)
    model, info = load_artifact(run.file("pruned.pt"))
    assert info.plan["method"] == "cpli" and entry["metrics"]["macs_after"] == report["macs_after"]
    assert sum(p.numel() for p in model.parameters()) == report["params_after"] < report["params_before"]
    assert entry["metrics"]["top1_before_finetune"] > 80


@pytest.mark.parametrize(
    "override, message",
    [
        ("prune.macs_keep=0.01", "cannot be met"),
        ("prune.skip=['features.0','features.3','features.7','features.10']", "cannot be met"),
        ("model.name='vgg16_cifar'", "takes 3-channel inputs"),  # caught by validation, with the data's shape
    ],
)
def test_bad_input_fails_before_sampling(
    trained: Path,
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    override: str,
    message: str,
) -> None:
    def no_sampling(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("sampling started")

    monkeypatch.setattr("cplitool.toolchain.prune.stage.prune_model", no_sampling)
    dense = trained.parent / "run" / "dense.pt"
    args = ["prune", str(trained), "--set", override, "--set", f"model.checkpoint='{dense}'"]
    from cplitool.cli.app import main

    monkeypatch.setattr("sys.argv", ["cplitool", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _digits(trained: Path) -> tuple[nn.Module, object, object]:
    recipe = load_recipe(trained)
    model, _ = load_artifact(trained.parent / "run" / "dense.pt")
    train = build_split(recipe.data, "train", augment=False, seed=0)
    train.dataset = train.dataset.subset(list(range(400))) if train.batched else train.dataset  # type: ignore[attr-defined]
    val = build_split(recipe.data, "val", augment=False, seed=0)
    return model, make_loader(train, 200, shuffle=False), make_loader(val, 512, shuffle=False)


def test_digits_ablation_smoke_cpli_beats_random(trained: Path) -> None:
    """CI's version of benchmarks/prune_ablation.py: same stages and widths, accuracy before fine-tuning."""
    dense, loader, val = _digits(trained)
    batches = list(loader)  # type: ignore[call-overload]
    top1 = {}
    for method in ("cpli", "random"):
        cfg = PruneSection(method=method, macs_keep=0.5)
        model = copy.deepcopy(dense)
        plan = make_plan(model, (1, 8, 8), cfg)
        pruned = prune_model(model, plan, cfg, batches, torch.device("cpu"), seed=0).model
        top1[method] = evaluate(pruned, val, torch.device("cpu"))["top1"]  # type: ignore[arg-type]
    assert top1["cpli"] > top1["random"], top1


def test_prune_stage_scope_all_reports_groups(trained: Path, in_tmp: Path) -> None:
    """scope all through the CLI: the report lists groups with their consumers' errors, and the pruned
    model (its classifier after the flatten included) reloads."""
    args = ["prune", str(trained), "--set", "prune.scope='all'", "--set", "prune.method='cp'"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = RunDir(trained.parent / "run")
    report = json.loads(run.file("prune_report.json").read_text())
    assert report["scope"] == "all" and report["groups"] and abs(report["macs_keep"] - 0.5) <= 0.01
    assert all(c["err_after"] <= c["err_before"] for g in report["groups"] for c in g["consumers"])
    assert all(c["ridge"] is None or c["ridge"] in ridge_grid(1e-4) for g in report["groups"] for c in g["consumers"])
    assert any(r.get("group") for r in report["layers"])
    model, _ = load_artifact(run.file("pruned.pt"))
    assert sum(p.numel() for p in model.parameters()) == report["params_after"]


def test_a_users_checkpoint_gets_its_dense_accuracy_evaluated_once_and_reported(trained: Path, in_tmp: Path) -> None:
    """Bringing your own model: no train stage records the dense top-1, so prune evaluates the checkpoint
    once (cached by its content hash) and the report's dense row shows it with its image count."""
    from cplitool.deploy.report import model_rows

    model, _ = load_artifact(trained.parent / "run" / "dense.pt")
    checkpoint = in_tmp / "mine.pth"
    torch.save(model.state_dict(), checkpoint)
    own = ["--set", f"model.checkpoint='{checkpoint}'", "--set", f"run.dir='{in_tmp / 'own'}'"]
    outputs = [CliRunner().invoke(app, ["prune", str(trained), *own], catch_exceptions=False).output for _ in range(2)]
    assert [o.count("evaluating the dense checkpoint mine.pth once") for o in outputs] == [1, 0]  # then cached
    recipe = load_recipe(trained, {"model": {"checkpoint": str(checkpoint)}, "run": {"dir": str(in_tmp / "own")}})
    rows = {r["model"]: r for r in model_rows(recipe, RunDir(in_tmp / "own"))[0]}
    assert rows["dense"]["top1"] is not None and rows["dense"]["top1"] > 80
    assert rows["dense"]["top1_images"] == rows["pruned"]["top1_images"] == 360  # digits' validation split
    entry = RunDir(in_tmp / "own").stage("prune")
    assert entry is not None and entry["metrics"]["dense_top1"] == rows["dense"]["top1"]


def test_eval_of_the_dense_checkpoint_fills_the_reports_dense_row(trained: Path, in_tmp: Path) -> None:
    from cplitool.deploy.report import model_rows

    model, _ = load_artifact(trained.parent / "run" / "dense.pt")
    checkpoint = in_tmp / "mine.pth"
    torch.save(model.state_dict(), checkpoint)
    overrides = {"model": {"checkpoint": str(checkpoint)}, "run": {"dir": str(in_tmp / "evalrun")}}
    recipe = load_recipe(trained, overrides)
    run = RunDir.open(recipe)
    assert model_rows(recipe, run)[0][0]["top1"] is None  # nothing recorded yet
    sets = [f"--set=model.checkpoint='{checkpoint}'", f"--set=run.dir='{in_tmp / 'evalrun'}'"]
    result = CliRunner().invoke(app, ["eval", str(trained), *sets], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dense = model_rows(recipe, run)[0][0]
    assert dense["top1"] is not None and f"{dense['top1']:.2f}%" in result.output and dense["top1_images"] == 360


def test_compare_prunes_l1_to_the_same_macs_beside_cpli_and_the_run_table_shows_it(trained: Path, in_tmp: Path) -> None:
    from cplitool.cli.run_table import summarize

    dense = trained.parent / "run" / "dense.pt"
    sets = ["--set=prune.compare=['l1']", f"--set=run.dir='{in_tmp / 'cmp'}'", f"--set=model.checkpoint='{dense}'"]
    result = CliRunner().invoke(app, ["prune", str(trained), *sets], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = RunDir(in_tmp / "cmp")
    metrics = run.stage("prune")["metrics"]  # type: ignore[index]
    (row,) = metrics["compare"]
    assert row["method"] == "l1" and row["images"] == 360
    assert abs(row["macs"] - metrics["macs_after"]) / metrics["macs_after"] < 0.05  # the same target
    assert row["top1"] < metrics["top1_before_finetune"]  # without reconstruction l1 loses more before fine-tuning
    recipe = load_recipe(trained, {"run": {"dir": str(in_tmp / "cmp")}, "model": {"checkpoint": str(dense)}})
    rows = {r["model"]: r for r in summarize(recipe, run).rows}
    assert rows["l1 pruned"]["top1"] == row["top1"] and rows["l1 pruned"]["latency_ms"] == {}
