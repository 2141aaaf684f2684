"""`cplitool init`: a commented starting recipe from the shipped templates, valid as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.recipe.init import TEMPLATES, render, template_text
from cplitool.toolchain.recipe.load import load_recipe, recipe_from_text
from tests.conftest import REPO


@pytest.mark.parametrize("data", list(TEMPLATES))
def test_every_template_renders_completely(data: str) -> None:
    text = render("mynet", None, data, "mynet.toml")
    assert "$" not in text.replace("${", "")  # every placeholder filled
    assert f'name = "{TEMPLATES[data].model}"' in text and 'name = "mynet"' in text
    assert "# checkpoint = " in text  # the way to bring trained weights is in the file


def test_digits_recipe_validates_and_matches_the_quickstart_settings(in_tmp: Path) -> None:
    recipe = recipe_from_text(render("mine", None, "digits", "mine.toml"), in_tmp / "mine.toml")
    quick = load_recipe(REPO / "recipes" / "quickstart.toml")
    assert recipe.run.name == "mine" and recipe.model.name == "quick_vgg"
    assert (recipe.train.epochs, recipe.prune.macs_keep, recipe.data.name) == (15, 0.5, "digits")
    assert recipe.prune.num_images == quick.prune.num_images and recipe.finetune.epochs == quick.finetune.epochs


def test_import_path_model_gets_its_input_shape(in_tmp: Path) -> None:
    text = render("net", "torchvision.models:mobilenet_v2", "cifar10", "net.toml")
    assert 'name = "torchvision.models:mobilenet_v2"' in text
    assert "input_shape = [3, 32, 32]" in text
    recipe = recipe_from_text(text, in_tmp / "net.toml")  # valid as written: the model builds at that shape
    assert recipe.model.input_shape == [3, 32, 32]
    assert "input_shape" not in render("net", "resnet20", "cifar10", "net.toml").replace("# ", "").split("[data]")[0]


def test_bad_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"--model 'resnt20': unknown architecture \(did you mean 'resnet20'\?\)"):
        render("x", "resnt20", "digits", "x.toml")
    with pytest.raises(UsageError, match=r"--data 'cifar': expected one of digits, cifar10, imagefolder"):
        template_text("cifar")


def test_cli_writes_once_and_check_accepts_it(in_tmp: Path, cli) -> None:
    first = cli("init", "mine")
    assert first.code == 0 and "cplitool check mine.toml" in first.out
    assert cli("check", "mine.toml").code == 0
    again = cli("init", "mine")
    assert again.code == 2 and "already exists" in again.out + again.err
    assert cli("init", "mine", "--force", "--data", "cifar10").code == 0
    assert 'name = "cifar10"' in (in_tmp / "mine.toml").read_text()
    assert cli("init", "bad/name").code == 2
    assert cli("init", "other", "--out", "sub/other.toml").code == 2  # missing folder: one line, exit 2
