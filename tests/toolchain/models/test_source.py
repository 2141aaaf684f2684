"""model.name as a registered name or an import path: building, num_classes passing, input shapes and the
one-line errors that name the module."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models.source import ModelSource, accepts, resolve


def test_registered_name_builds_from_the_registry() -> None:
    source = ModelSource("quick_vgg", 7)
    assert source.shape() == (1, 8, 8) and not source.imported
    assert source.build().eval()(torch.randn(2, 1, 8, 8)).shape == (2, 7)


def test_torchvision_builder_gets_num_classes_through_its_kwargs() -> None:
    """Breaking accepts() for **kwargs leaves torchvision's 1000-class head and fails here."""
    source = ModelSource("torchvision.models:mobilenet_v2", 10, {"width_mult": 0.25}, (3, 32, 32))
    with torch.device("meta"):
        model = source.build()
    assert model.classifier[-1].out_features == 10
    assert model.features[0][0].out_channels == 8  # width_mult passed through


def test_user_class_from_the_recipe_folder(tmp_path: Path, user_module: Callable[..., Path]) -> None:
    user_module("tinynets_a", folder=tmp_path / "recipes")
    path_before = list(sys.path)
    model = ModelSource("tinynets_a:TinyNet", 5, {"width": 4}, (1, 8, 8), root=str(tmp_path / "recipes")).build()
    assert (model.conv1.out_channels, model.fc.out_features) == (4, 5)
    assert sys.path == path_before  # the folder is importable only while importing


def test_num_classes_is_passed_only_when_the_callable_takes_it(tmp_path: Path, user_module) -> None:
    user_module("tinynets_b")
    factory = resolve("tinynets_b:tiny_factory", str(tmp_path))
    assert not accepts(factory, "num_classes") and accepts(resolve("tinynets_b:TinyNet", str(tmp_path)), "num_classes")
    model = ModelSource("tinynets_b:tiny_factory", 10, {"width": 2}, (1, 8, 8), root=str(tmp_path)).build()
    assert model.fc.out_features == 3  # its own head; passing num_classes would have been a TypeError


def test_the_working_directory_is_importable(in_tmp: Path, user_module) -> None:
    user_module("tinynets_c", folder=in_tmp)
    assert ModelSource("tinynets_c:TinyNet", 4, input_shape=(1, 8, 8)).build().fc.out_features == 4


def test_input_shape_is_required_for_an_import_path() -> None:
    with pytest.raises(UsageError, match=r"model.input_shape: required for the import-path model 'mynets:Net'"):
        ModelSource("mynets:Net").shape()
    assert ModelSource("mynets:Net", input_shape=(3, 4, 16, 16)).shape() == (3, 4, 16, 16)
    assert ModelSource("quick_vgg", input_shape=(1, 12, 12)).shape() == (1, 12, 12)  # overrides the registry


BROKEN = {
    "missing module": ("", "nosuch_module_xyz:Net", r"no module named 'nosuch_module_xyz' \(searched .*\)"),
    "missing dependency": (
        "import nosuch_dependency_xyz\n",
        "brokenmod_dep:Net",
        r"importing 'brokenmod_dep' failed: ModuleNotFoundError: No module named 'nosuch_dependency_xyz' \(.*brokenmod_dep.py:1\)",
    ),
    "syntax error": ("def (:\n", "brokenmod_syntax:Net", r"importing 'brokenmod_syntax' failed: SyntaxError"),
    "error at import": (
        "raise RuntimeError('no GPU here')\n",
        "brokenmod_raise:Net",
        r"importing 'brokenmod_raise' failed: RuntimeError: no GPU here \(.*brokenmod_raise.py:1\)",
    ),
    "missing attribute": (
        "class TinyNet: pass\n",
        "brokenmod_attr:TinyNt",
        r"module 'brokenmod_attr' \(.*brokenmod_attr.py\) has no attribute 'TinyNt' \(did you mean 'TinyNet'\?\)",
    ),
    "not callable": ("WIDTH = 3\n", "brokenmod_const:WIDTH", r"'WIDTH' is a int, expected a class or function"),
    "no callable named": ("", "brokenmod_empty:", r"expected an import path 'package.module:callable'"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_import_failures_are_one_line_naming_the_module(case: str, tmp_path: Path, user_module) -> None:
    text, name, message = BROKEN[case]
    if text:
        user_module(name.partition(":")[0], text)
    with pytest.raises(UsageError, match=message) as e:
        ModelSource(name, input_shape=(1, 8, 8), root=str(tmp_path)).build()
    assert str(e.value).startswith(f"model.name {name!r}: ") and "\n" not in str(e.value)


def test_constructor_failures_are_usage_errors(tmp_path: Path, user_module) -> None:
    user_module(
        "ctor_mod", "def boom(num_classes):\n    raise ValueError('bad width')\n\ndef number():\n    return 3\n"
    )
    user_module("tinynets_d")
    root = str(tmp_path)
    with pytest.raises(UsageError, match=r"model.kwargs: \{'depth': 3\} do not fit 'tinynets_d:TinyNet'"):
        ModelSource("tinynets_d:TinyNet", kwargs={"depth": 3}, root=root).build()
    with pytest.raises(UsageError, match=r"building it failed: ValueError: bad width \(.*ctor_mod.py:2\)"):
        ModelSource("ctor_mod:boom", root=root).build()
    with pytest.raises(UsageError, match=r"returned a int, expected a torch nn.Module"):
        ModelSource("ctor_mod:number", root=root).build()
    with pytest.raises(UsageError, match=r"model.kwargs.num_classes: set model.num_classes instead"):
        ModelSource("tinynets_d:TinyNet", kwargs={"num_classes": 3}, root=root).build()
