"""Recipe validation through the real CLI: every kind of bad recipe is one clear line, exit 2, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe import load_recipe
from cplitool.toolchain.recipe.load import parse_assignment
from tests.conftest import write_recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# (recipe text, the key path the message must name, what it must say was expected)
BAD_RECIPES = {
    "unknown key": ("[train]\nepocs = 3\n", "train.epocs", "unknown key (did you mean 'epochs'?)"),
    "unknown section": ("[trian]\nepochs = 3\n", "trian", "unknown section (did you mean 'train'?)"),
    "wrong type": ('[train]\nepochs = "ten"\n', "train.epochs", "expected an integer, got 'ten'"),
    "wrong list item type": ('[bench]\nbatches = [1, "x"]\n', "bench.batches", "expected a list of integers"),
    "section not a table": ("model = 3\n", "model", "expected a table ([model])"),
    "below minimum": ("[train]\nepochs = 0\n", "train.epochs", "expected a value >= 1, got 0"),
    "not above exclusive minimum": ("[train]\nlr = 0.0\n", "train.lr", "expected a value > 0.0, got 0.0"),
    "above maximum": ("[prune]\nmacs_keep = 1.5\n", "prune.macs_keep", "expected a value <= 1.0, got 1.5"),
    "bad choice": (
        '[train]\nschedule = "cosin"\n',
        "train.schedule",
        "expected one of 'cosine', 'onecycle', 'constant', got 'cosin' (did you mean 'cosine'?)",
    ),
    "unknown model": ('[model]\nname = "resnet21"\n', "model.name", "unknown architecture 'resnet21' (did you mean"),
    "bad model kwargs": (
        '[model]\nname = "resnet20"\nkwargs = { width = 2 }\n',
        "model.kwargs",
        "unexpected keyword argument 'width'",
    ),
    "pretrained without weights": (
        '[model]\nname = "quick_vgg"\npretrained = true\n',
        "model.pretrained",
        "torchvision models only",
    ),
    "missing checkpoint": ('[model]\ncheckpoint = "weights/missing.pt"\n', "model.checkpoint", "file not found"),
    "missing data root": ('[data]\nname = "imagefolder"\nroot = "nowhere"\n', "data.root", "directory not found"),
    "data root not given": ('[data]\nname = "video"\n', "data.root", "needs a root directory"),
    "undefined variable": (
        '[data]\nname = "imagefolder"\nroot = "${CPLITOOL_TEST_UNSET}/cifar"\n',
        "data.root",
        "environment variable ${CPLITOOL_TEST_UNSET} is not set",
    ),
    "trt min/opt/max": (
        "[trt]\nmin_batch = 8\nopt_batch = 4\n",
        "trt",
        "expected min_batch <= opt_batch <= max_batch, got 8, 4, 256",
    ),
    "bad precision": (
        '[export]\nprecisions = ["fp8"]\n',
        "export.precisions",
        "expected values among fp32, fp16, int8",
    ),
    "empty batch list": ("[bench]\nbatches = []\n", "bench.batches", "non-empty list of positive batch sizes"),
    "layer keep out of range": (
        "[prune.layer_keep]\nconv1 = 0.0\n",
        "prune.layer_keep.conv1",
        "expected a value > 0.0",
    ),
    "import path without input_shape": (
        '[model]\nname = "torchvision.models:mobilenet_v2"\n',
        "model.input_shape",
        "required for the import-path model 'torchvision.models:mobilenet_v2'",
    ),
    "import path to a missing module": (
        '[model]\nname = "nosuch_module_xyz:Net"\ninput_shape = [3, 32, 32]\n',
        "model.name",
        "no module named 'nosuch_module_xyz'",
    ),
    "dotted name instead of an import path": (
        '[model]\nname = "torchvision.models.mobilenet_v2"\n',
        "model.name",
        "an import path is written 'package.module:callable'",
    ),
    "input_shape of the wrong rank": (
        "[model]\ninput_shape = [3, 32]\n",
        "model.input_shape",
        "expected [C, H, W] or [C, T, H, W] of positive sizes, got [3, 32]",
    ),
    "input_shape not a list": (
        '[model]\ninput_shape = "3x32x32"\n',
        "model.input_shape",
        "expected a list of integers",
    ),
    "checkpoint_key not a string": (
        "[model]\ncheckpoint_key = 3\n",
        "model.checkpoint_key",
        "expected a string, got 3",
    ),
    "key_map not a table of strings": ("[model]\nkey_map = { a = 1 }\n", "model.key_map", "expected a table"),
    "key_map with a bad regex": (
        '[model]\nkey_map = { "layer(" = "layers." }\n',
        "model.key_map",
        "'layer(' is not a regular expression",
    ),
    "pretrained with an import path": (
        '[model]\nname = "torchvision.models:resnet18"\ninput_shape = [3, 32, 32]\npretrained = true\n',
        "model.pretrained",
        "registered torchvision models only",
    ),
    "invalid TOML": ("[train\nepochs = 3\n", "", "not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES), ids=list(BAD_RECIPES))
def test_bad_recipe_is_one_clear_error_exit_2_nothing_written(case: str, in_tmp: Path, cli, monkeypatch) -> None:
    monkeypatch.delenv("CPLITOOL_TEST_UNSET", raising=False)
    text, key, expected = BAD_RECIPES[case]
    recipe = write_recipe(in_tmp, text)
    result = cli("train", recipe)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert result.err.count("error:") == 1
    problem_lines = [ln.strip() for ln in result.err.splitlines() if str(recipe) in ln]
    assert len(problem_lines) == 1, result.err  # one problem, one line naming the file
    assert f"{recipe}: {key}" in problem_lines[0]
    assert expected in problem_lines[0]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["r.toml"]  # no runs/, no state, nothing


def test_every_problem_is_listed_at_once(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, "[train]\nepocs = 3\nlr = -1.0\n[data]\nbatch_size = 0\n")
    result = cli("check", recipe)
    assert result.code == 2
    for key in ("train.epocs", "train.lr", "data.batch_size"):
        assert f"{recipe}: {key}:" in result.err


def test_missing_recipe_file(in_tmp: Path, cli) -> None:
    result = cli("check", "nope.toml")
    assert result.code == 2
    assert "nope.toml: recipe file not found" in result.err


@pytest.mark.parametrize(
    ("assignment", "message"),
    [("train.epocs=3", "train.epocs: unknown key"), ("epochs=3", "expected section.key=value")],
)
def test_bad_set_override(assignment: str, message: str, in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, "")
    result = cli("check", recipe, "--set", assignment)
    assert result.code == 2
    assert message in result.err


def test_paths_resolve_relative_to_the_recipe_not_the_cwd(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "recipes"
    (folder / "data" / "train").mkdir(parents=True)
    (folder / "weights").mkdir()
    (folder / "weights" / "dense.pt").write_bytes(b"")
    recipe = write_recipe(
        folder,
        '[model]\nname = "vgg16_cifar"\ncheckpoint = "weights/dense.pt"\n[data]\nname = "imagefolder"\nroot = "data"\n[run]\ndir = "out"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = load_recipe(recipe)
    assert r.model.checkpoint == str(folder / "weights" / "dense.pt")
    assert r.data.root == str(folder / "data")
    assert r.run_dir == folder / "out"


def test_env_vars_expand(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cifar").mkdir()
    monkeypatch.setenv("CPLITOOL_TEST_DATA", str(tmp_path))
    recipe = write_recipe(
        tmp_path, '[model]\nname = "vgg16_cifar"\n[data]\nname = "imagefolder"\nroot = "${CPLITOOL_TEST_DATA}/cifar"\n'
    )
    assert load_recipe(recipe).data.root == str(tmp_path / "cifar")


def test_check_prints_the_resolved_recipe_as_toml_with_defaults(in_tmp: Path, cli) -> None:
    recipe = write_recipe(in_tmp, '[model]\nname = "resnet20"\n[train]\nepochs = 3\n')
    result = cli("check", recipe, "--set", "train.lr=0.2", "--set", "data.name=synthetic")
    assert result.code == 0, result.err
    first, _, body = result.out.partition("\n")
    assert first == f"# {recipe}: valid; run directory {in_tmp / 'runs' / 'r'}"
    printed = tomllib.loads(body)
    assert printed == load_recipe(recipe, {"train": {"lr": 0.2}, "data": {"name": "synthetic"}}).to_dict()
    assert printed["train"] == {**printed["train"], "epochs": 3, "lr": 0.2, "momentum": 0.9}  # given, --set, default
    assert printed["data"]["name"] == "synthetic"
    assert printed["prune"]["macs_keep"] == 0.5  # a section absent from the file is filled in
    assert printed["run"]["name"] == "r"  # the recipe's stem
    assert not (in_tmp / "runs").exists()  # check writes nothing


def test_check_json(in_tmp: Path, cli) -> None:
    import json

    recipe = write_recipe(in_tmp, "[train]\nepochs = 2\n")
    result = cli("check", recipe, "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["train"]["epochs"] == 2 and data["source"] == str(recipe)


def test_parse_assignment() -> None:
    assert parse_assignment("train.epochs=3") == {"train": {"epochs": 3}}
    assert parse_assignment("train.optimizer=adamw") == {"train": {"optimizer": "adamw"}}  # bare word: a string
    assert parse_assignment("bench.batches=[1, 8]") == {"bench": {"batches": [1, 8]}}
    assert parse_assignment("prune.layer_keep.features.0=0.5") == {"prune": {"layer_keep": {"features.0": 0.5}}}


def test_set_merges_into_a_table_key(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "[prune.layer_keep]\nconv1 = 0.5\n")
    r = load_recipe(recipe, parse_assignment("prune.layer_keep.features.0=0.25"))
    assert r.prune.layer_keep == {"conv1": 0.5, "features.0": 0.25}


def test_ints_are_accepted_as_floats(tmp_path: Path) -> None:
    r = load_recipe(write_recipe(tmp_path, "[train]\nlr = 1\n"))
    assert r.train.lr == 1.0 and isinstance(r.train.lr, float)


def test_section_hash_changes_with_the_section_only(tmp_path: Path) -> None:
    a = load_recipe(write_recipe(tmp_path, "[train]\nepochs = 2\n"))
    b = load_recipe(write_recipe(tmp_path, "[train]\nepochs = 3\n"))
    c = load_recipe(write_recipe(tmp_path, "[train]\nepochs = 2\n[prune]\nmacs_keep = 0.3\n"))
    assert a.section_hash("train") != b.section_hash("train")
    assert a.section_hash("model", "train") == c.section_hash("model", "train")


def test_load_recipe_raises_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"train.epochs"):
        load_recipe(write_recipe(tmp_path, "[train]\nepochs = -1\n"))


def test_an_import_path_model_is_checked_on_one_meta_input(in_tmp: Path, cli, user_module) -> None:
    """model.input_shape must run through the user's model and model.num_classes must match its logits."""
    user_module("tinynets_load", folder=in_tmp)
    head = '[model]\nname = "tinynets_load:{fn}"\ninput_shape = {shape}\nnum_classes = {n}\n'
    cases = {
        ("TinyNet", "[1, 8, 8]", 10): None,
        (
            "TinyNet",
            "[3, 8, 8]",
            10,
        ): "model.input_shape: 'tinynets_load:TinyNet' does not run on one input of shape [3, 8, 8]: RuntimeError",
        ("tiny_factory", "[1, 8, 8]", 10): (
            "model.num_classes: 10, but 'tinynets_load:tiny_factory' outputs 3 classes; its constructor takes no "
            "num_classes: pass its own argument through model.kwargs"
        ),
    }
    for (fn, shape, n), message in cases.items():
        recipe = write_recipe(in_tmp, head.format(fn=fn, shape=shape, n=n))
        result = cli("check", recipe)
        if message is None:
            assert result.code == 0, result.err
        else:
            assert result.code == 2 and f"{recipe}: {message}" in result.err, result.err
