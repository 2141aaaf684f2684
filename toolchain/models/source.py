"""Where a model comes from: a registered name, or an import path "package.module:callable" to the user's
own code or any library's constructor (torchvision's classification models, for one).

Importing the user's module is their own choice, the same trust as running their script; checkpoints stay
weights-only. An artifact names its source, and the artifact loader imports it only when the recipe in
hand names the same source (see `cplitool.toolchain.artifacts`), so a file alone never chooses code to run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from cplitool.toolchain.errors import UsageError, did_you_mean, typed_first_line
from cplitool.toolchain.models import registry

if TYPE_CHECKING:
    from cplitool.toolchain.recipe import Recipe

SEPARATOR = ":"


def is_import_path(name: str) -> bool:
    return SEPARATOR in name


@contextlib.contextmanager
def importable(*folders: str) -> Iterator[None]:
    """Put `folders` at the front of sys.path for the duration of an import, then restore it."""
    added = [f for f in dict.fromkeys(folders) if f and f not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


def _where(e: BaseException) -> str:
    """` (file:line)` of the innermost frame of the exception's traceback, if any."""
    frames = traceback.extract_tb(e.__traceback__)
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _import(module: str, name: str, folders: list[str]) -> Any:
    """Import `module`; every failure is one usage error that names the module and where it was sought."""
    try:
        with importable(*folders):
            return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            searched = ", ".join(dict.fromkeys(folders))
            raise UsageError(
                f"model.name {name!r}: no module named {missing!r} (searched {searched} and the Python path); "
                "put the module next to the recipe or in the working directory, or install its package"
            ) from None
        raise UsageError(
            f"model.name {name!r}: importing {module!r} failed: {typed_first_line(e)}{_where(e)}"
        ) from None
    except Exception as e:  # the user's module raised while importing: say where, without a traceback
        raise UsageError(
            f"model.name {name!r}: importing {module!r} failed: {typed_first_line(e)}{_where(e)}"
        ) from None


def resolve(name: str, root: str = "") -> Callable[..., Any]:
    """The callable that `name` ("package.module:attr.attr") points at, imported from `root` (the recipe's
    folder), the working directory or the Python path, in that order."""
    module, _, attr = name.partition(SEPARATOR)
    if not module or not attr:
        raise UsageError(f"model.name {name!r}: expected an import path 'package.module:callable'")
    obj = _import(module, name, [root, os.getcwd()])
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [a for a in dir(obj) if not a.startswith("_")]
            raise UsageError(
                f"model.name {name!r}: module {module!r} ({getattr(sys.modules.get(module), '__file__', '?')}) "
                f"has no attribute {attr!r}{did_you_mean(part, public)}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"model.name {name!r}: {attr!r} is a {type(obj).__name__}, expected a class or function")
    return obj


def accepts(fn: Callable[..., Any], keyword: str) -> bool:
    """Whether `fn` takes `keyword` by name (explicitly or through **kwargs, as torchvision's builders do)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: do not guess
        return False
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclass(frozen=True)
class ModelSource:
    """A model's source and what its constructor gets: everything needed to build it again."""

    name: str  # registered name or "package.module:callable"
    num_classes: int = 10
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()  # one sample; () takes the registry's default
    root: str = ""  # folder searched first for an import path's module (the recipe's folder)

    @classmethod
    def of(cls, recipe: Recipe) -> ModelSource:
        m = recipe.model
        return cls(m.name, m.num_classes, dict(m.kwargs), tuple(m.input_shape), str(recipe.source.parent))

    @property
    def imported(self) -> bool:
        return is_import_path(self.name)

    def shape(self) -> tuple[int, ...]:
        """One input's shape: model.input_shape, else the registry's (import paths have none to offer)."""
        if self.input_shape:
            return tuple(self.input_shape)
        if self.imported:
            raise UsageError(
                f"model.input_shape: required for the import-path model {self.name!r} (the registry cannot supply "
                "it): give one sample's shape, e.g. input_shape = [3, 32, 32] or [3, 16, 112, 112] for video"
            )
        return registry.input_shape(self.name, self.kwargs)

    def build(self, **extra: Any) -> nn.Module:
        """Construct the model (weights initialised by its own constructor); any failure is one usage error."""
        kwargs = {**self.kwargs, **extra}
        if "num_classes" in kwargs:
            raise UsageError("model.kwargs.num_classes: set model.num_classes instead")
        if not self.imported:
            return registry.create_model(self.name, self.num_classes, **kwargs)
        fn = resolve(self.name, self.root)
        if accepts(fn, "num_classes"):
            kwargs["num_classes"] = self.num_classes
        try:
            model = fn(**kwargs)
        except TypeError as e:
            raise UsageError(f"model.kwargs: {self.kwargs} do not fit {self.name!r}: {typed_first_line(e)}") from None
        except Exception as e:  # the user's constructor failed: one line naming where
            raise UsageError(
                f"model.name {self.name!r}: building it failed: {typed_first_line(e)}{_where(e)}"
            ) from None
        if not isinstance(model, nn.Module):
            raise UsageError(f"model.name {self.name!r}: returned a {type(model).__name__}, expected a torch nn.Module")
        return model
