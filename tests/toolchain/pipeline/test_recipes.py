"""Every recipe in recipes/ validates, and runs end to end on its --smoke override (synthetic data here,
so the result does not depend on which data sets the machine holds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cplitool.cli.app import app
from cplitool.cli.pipeline_cmds import STAGES
from cplitool.toolchain.pipeline.runner import load_entry
from cplitool.toolchain.pipeline.smoke import smoke_overrides
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.toml"))
DATA_VARS = ("CIFAR10_JPEG", "IMAGENET", "UCF101", "RESNET50_WEIGHTS")


def fake_data(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty data folders and a checkpoint file where the recipes' ${VARS} point. `check` loads a checkpoint
    to see that it fits (tests/toolchain/fuzz covers that); ResNet-50's 100 MB of weights are left out here."""
    for var, splits in (
        ("CIFAR10_JPEG", ("train", "test")),
        ("IMAGENET", ("train", "val")),
        ("UCF101", ("train", "test")),
    ):
        for split in splits:
            (folder / var / split).mkdir(parents=True)
        monkeypatch.setenv(var, str(folder / var))
    (folder / "resnet50.pth").write_bytes(b"")
    monkeypatch.setattr("cplitool.toolchain.artifacts.check_dense", lambda recipe: None)
    monkeypatch.setenv("RESNET50_WEIGHTS", str(folder / "resnet50.pth"))


def test_recipes_are_all_here() -> None:
    assert {p.stem for p in RECIPES} >= {"quickstart", "vgg16", "resnet56", "resnet50", "c3d"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_passes_check(path: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_data(in_tmp, monkeypatch)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_smoke_keeps_real_data_as_a_subset_and_otherwise_goes_synthetic() -> None:
    real = smoke_overrides(REPO / "recipes" / "c3d.toml", real_data=True)
    assert real["data"].items() >= {"train_subset": 64, "val_subset": 64, "clip_len": 4, "image_size": 32}.items()
    assert "name" not in real["data"] and real["model"]["kwargs"] == {
        "batch_norm": True,
        "width": 0.125,
        "fc_width": 64,
    }
    fake = smoke_overrides(REPO / "recipes" / "resnet50.toml", real_data=False)
    assert fake["data"]["name"] == "synthetic" and fake["data"]["synthetic_shape"] == [3, 32, 32]
    assert fake["data"]["synthetic_classes"] == 1000 and fake["model"]["checkpoint"] == ""
    assert fake["run"]["name"] == "resnet50-smoke"  # never over the real run


# Minutes each on a shared 2-core CPU (CPLI's least squares over ResNet-50's 4,608-wide layers and
# ResNet-56's 27 stages, C3D's 3-D convolutions): `make test-slow` runs them.
SLOW = {"resnet50", "resnet56", "c3d"}


def smoke(path: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", str(path), "--smoke", "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return doc


def check_smoke(doc: dict[str, Any], synthetic: bool) -> None:
    stages = {s["stage"]: s["status"] for s in doc["stages"]}
    for spec in STAGES:
        if load_entry(spec.entry) is None:
            expected = "not available"
        elif any(stages[n] not in ("ran", "skipped") for n in spec.needs):
            expected = "blocked"
        else:
            expected = "ran"
        assert stages[spec.name] == expected, (spec.name, stages)
    manifest = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    assert manifest["recipe"]["source"] == str(Path(doc["run_dir"]) / "recipe.toml")  # the overrides, pinned
    rows = {r["model"]: r for r in doc["summary"]["rows"]}
    assert "dense" in rows
    # Synthetic data (random labels): no accuracy is claimed. Digits are real: top-1 is measured.
    assert all((r["top1"] is None) == synthetic for r in rows.values())
    if stages["finetune"] == "ran":
        assert rows["finetuned"]["macs"] < rows["dense"]["macs"]
    if stages["bench"] == "ran":  # every recipe benches onnxruntime at the smoke batches 1 and 8
        assert set(rows["dense"]["latency_ms"]) == set(rows["finetuned"]["latency_ms"]) == {"1", "8"}  # JSON keys


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in RECIPES],
    ids=lambda p: p.stem,
)
def test_every_recipe_runs_end_to_end_on_its_smoke_override(
    path: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    check_smoke(smoke(path), synthetic=path.stem != "quickstart")
    again = smoke(path)
    assert all(s["status"] in ("up to date", "skipped") for s in again["stages"] if s["stage"] != "report")
