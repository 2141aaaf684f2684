"""`cplitool init`: a commented starting recipe from the templates shipped inside the package.

The templates are package data (toolchain/recipe/templates/*.toml), so an installed wheel can write a
recipe without a clone of the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from cplitool.toolchain.errors import UsageError, did_you_mean
from cplitool.toolchain.io import atomic_write


@dataclass(frozen=True)
class Kind:
    """A template: the data it reads, the model it starts with and one input's shape for that data."""

    model: str
    input_shape: tuple[int, ...]


TEMPLATES = {
    "digits": Kind("quick_vgg", (1, 8, 8)),
    "cifar10": Kind("resnet56", (3, 32, 32)),
    "imagefolder": Kind("resnet18", (3, 224, 224)),
}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def template_text(data: str) -> str:
    if data not in TEMPLATES:
        raise UsageError(f"--data {data!r}: expected one of {', '.join(TEMPLATES)}{did_you_mean(data, TEMPLATES)}")
    return (
        resources.files("cplitool.toolchain.recipe").joinpath("templates", f"{data}.toml").read_text(encoding="utf-8")
    )


def check_model(model: str) -> None:
    """A registered name, or an import path "package.module:Callable" (checked when the recipe is loaded)."""
    if ":" in model:
        return
    from cplitool.toolchain.models.registry import list_models

    names = list_models()
    if model not in names:
        raise UsageError(
            f"--model {model!r}: unknown architecture{did_you_mean(model, names)}; registered: {', '.join(names)}, "
            "or an import path such as 'torchvision.models:mobilenet_v2'"
        )


def render(name: str, model: str | None, data: str, file: str) -> str:
    """The recipe text for run `name` saved as `file`; an import-path model also gets model.input_shape
    (the registry cannot supply it)."""
    text = template_text(data)
    kind = TEMPLATES[data]
    model = model or kind.model
    check_model(model)
    shape = ""
    if ":" in model:
        dims = ", ".join(map(str, kind.input_shape))
        shape = f"input_shape = [{dims}]  # one input's [C, H, W]: needed for a model from an import path\n"
    return Template(text).substitute(name=name, file=file, model=model, input_shape=shape)


def write_recipe(name: str, model: str | None, data: str, out: Path | None, force: bool) -> Path:
    """Write NAME.toml (or `out`); refuses to overwrite an existing file unless `force`."""
    name = name.removesuffix(".toml")
    if not NAME.fullmatch(name):
        raise UsageError(f"init: NAME {name!r}: expected letters, digits, '-', '_' or '.' (it names the run)")
    path = out if out is not None else Path(f"{name}.toml")
    text = render(name, model, data, str(path))
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists; choose another NAME or --out, or pass --force to overwrite it")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
