"""Load a TOML recipe: parse, merge overrides, validate, resolve paths, cross-check, fill defaults."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cplitool.toolchain.errors import UsageError, did_you_mean, first_line, typed_first_line
from cplitool.toolchain.paths import regular_input
from cplitool.toolchain.recipe.sections import BACKENDS, PRECISIONS, Recipe
from cplitool.toolchain.recipe.validate import name_from_stem, validate_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SYNTHETIC_LIMIT = 2**30  # values in a synthetic data set, held in memory as float32
PARAM_LIMIT = 2**31  # parameters of a model (8 GiB as float32): beyond it, training would run out of memory


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base` (recipe overrides such as --smoke)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """Parse a `section.key=value` override (value in TOML syntax, bare words taken as strings).

    `section.table.name=value` sets one entry of a table key, e.g. prune.layer_keep.features.0=0.5.
    """
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UsageError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=3")
    path, value = text.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise UsageError(
            f"--set {path.strip()}=...: a number of {len(value):,} digits; expected a sensible value"
        ) from None
    section, key, *rest = path.strip().split(".", 2)
    return {section: {key: {rest[0]: parsed} if rest else parsed}}


def _fs(test: Callable[[Path], bool]) -> Callable[[str], bool]:
    """A file-system test that says False for a path the OS cannot even look up (too long, bad bytes)."""

    def safe(path: str) -> bool:
        try:
            return test(Path(path))
        except (OSError, ValueError):
            return False

    return safe


is_file, is_dir, exists = _fs(Path.is_file), _fs(Path.is_dir), _fs(Path.exists)


def check_model_args(r: Recipe, errors: list[str]) -> None:
    """Build the architecture on the meta device (no memory, no arithmetic) to catch bad model keys now;
    an import path's model also runs one meta input, to check model.input_shape and model.num_classes."""
    import inspect

    import torch

    from cplitool.toolchain.models.registry import get_spec, list_models
    from cplitool.toolchain.models.source import ModelSource

    p = f"{r.source}: "
    m = r.model
    if m.input_shape and (len(m.input_shape) not in (3, 4) or min(m.input_shape) < 1):
        errors.append(
            f"{p}model.input_shape: expected [C, H, W] or [C, T, H, W] of positive sizes, got {m.input_shape}"
        )
        return
    for pattern in m.key_map:
        try:
            re.compile(pattern)
        except re.error as e:
            errors.append(f"{p}model.key_map: {pattern!r} is not a regular expression ({e})")
    source = ModelSource.of(r)
    if not source.imported:
        if m.name not in list_models():
            form = "; an import path is written 'package.module:callable'" if "." in m.name else ""
            errors.append(
                f"{p}model.name: unknown architecture {m.name!r}{did_you_mean(m.name, list_models())}{form}; "
                f"registered: {', '.join(list_models())}"
            )
            return
        if m.pretrained and "pretrained" not in inspect.signature(get_spec(m.name).build).parameters:
            errors.append(f"{p}model.pretrained: {m.name!r} has no pretrained weights (torchvision models only)")
    elif m.pretrained:
        errors.append(
            f"{p}model.pretrained: registered torchvision models only; for an import path pass the constructor's "
            'own argument in model.kwargs (e.g. weights = "DEFAULT")'
        )
    try:
        shape = source.shape()
        with torch.device("meta"):
            model = source.build()
            if source.imported:
                check_forward(model, shape, r, errors)
    except UsageError as e:
        errors.append(f"{p}{e}")
        return
    except Exception as e:  # the constructor's own complaint about its arguments, whatever its type
        errors.append(f"{p}model.kwargs: {m.kwargs} do not build {m.name!r}: {first_line(e)}")
        return
    params = sum(t.numel() for t in model.parameters())
    if params > PARAM_LIMIT:
        errors.append(f"{p}model.kwargs: {m.name!r} with {m.kwargs} has {params:,} parameters (too large)")
    elif not errors:  # the model against the data, once each is sound on its own
        check_capture_memory(model, r, errors)
        check_data(r, errors)
        if not errors:
            check_data_fits(model, shape, r, errors)


def check_capture_memory(model: Any, r: Recipe, errors: list[str]) -> None:
    """Pruning keeps each layer's sampled output rows and their gradients (prune.num_images x prune.positions
    rows of the widest layer's channels, float32, twice): refuse now what would not fit in memory."""
    import os

    from torch import nn

    widest = max(
        (m.weight.shape[0] for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear)), default=0
    )
    need = 2 * 4 * r.prune.num_images * r.prune.positions * widest
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have // 2:
        errors.append(
            f"{r.source}: prune.num_images x prune.positions: {r.prune.num_images:,} x {r.prune.positions:,} sampled "
            f"rows of up to {widest:,} channels need {need / 2**30:,.1f} GiB, more than half of this machine's "
            f"{have / 2**30:.1f} GiB; lower prune.positions or prune.num_images"
        )


def check_data_fits(model: Any, shape: tuple[int, ...], r: Recipe, errors: list[str]) -> None:
    """The data set's inputs through the model on the meta device: channels first, then one forward, so a
    model that cannot take them (e.g. five pools on 8x8 digits) fails here rather than mid-training."""
    import torch

    from cplitool.toolchain.data.registry import data_sample_shape

    p = f"{r.source}: "
    data = data_sample_shape(r.data)
    if data is None:
        return
    if shape[0] != data[0]:
        errors.append(
            f"{p}model.name: {r.model.name!r} takes {shape[0]}-channel inputs but data set {r.data.name!r} gives "
            f"{data[0]}-channel ones; pick a model for them (e.g. model.kwargs.in_channels = {data[0]})"
        )
        return
    try:
        with torch.device("meta"), torch.no_grad():
            model.eval()(torch.empty(1, *data))
    except Exception as e:  # shape errors from any layer: the data's inputs do not fit this model
        errors.append(f"{p}model.name: {r.model.name!r} cannot take inputs of shape {data}: {first_line(e)}")


def check_forward(model: Any, shape: tuple[int, ...], r: Recipe, errors: list[str]) -> None:
    """One meta-device input through an import-path model: it must run and give num_classes logits."""
    import torch

    from cplitool.toolchain.models.source import accepts, resolve

    p, name, classes = f"{r.source}: ", r.model.name, r.model.num_classes
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(1, *shape))
    except Exception as e:  # the user's forward: any failure means the shape or the model is wrong
        errors.append(
            f"{p}model.input_shape: {name!r} does not run on one input of shape {list(shape)}: {typed_first_line(e)}"
        )
        return
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        what = f"shape {list(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        errors.append(f"{p}model.name: {name!r} returns {what}, expected logits of shape [batch, classes]")
    elif out.shape[1] != classes:
        why = (
            ""
            if accepts(resolve(name, str(r.source.parent)), "num_classes")
            else ("; its constructor takes no num_classes: pass its own argument through model.kwargs")
        )
        errors.append(f"{p}model.num_classes: {classes}, but {name!r} outputs {out.shape[1]} classes{why}")


def check_data(r: Recipe, errors: list[str]) -> None:
    """Normalisation lists one value per channel, and the class count where the data set fixes it."""
    from cplitool.toolchain.data.registry import data_classes, data_sample_shape

    p = f"{r.source}: "
    shape = data_sample_shape(r.data)
    for key in ("mean", "std"):
        values = getattr(r.data, key)
        if values and shape is not None and len(values) != shape[0]:
            errors.append(
                f"{p}data.{key}: expected {shape[0]} values (one per channel of {r.data.name!r}), got {len(values)}"
            )
    if r.data.train_subset and r.data.train_subset < r.data.batch_size:
        errors.append(
            f"{p}data.batch_size: {r.data.batch_size} is larger than data.train_subset ({r.data.train_subset}); "
            "training drops the last partial batch, so no step would run"
        )
    classes = data_classes(r.data)
    if classes is not None and classes != r.model.num_classes:
        errors.append(
            f"{p}model.num_classes: {r.model.num_classes}, but data set {r.data.name!r} has {classes} classes"
        )


def cross_check(r: Recipe, errors: list[str]) -> None:
    """Checks that span keys or touch the file system."""
    p = f"{r.source}: "
    needs_root = r.data.name in ("imagefolder", "video") or (r.data.name == "cifar10" and not r.data.download)
    if r.model.checkpoint and not is_file(r.model.checkpoint):
        errors.append(f"{p}model.checkpoint: file not found: {r.model.checkpoint}")
    if needs_root and not r.data.root:
        errors.append(f"{p}data.root: data set {r.data.name!r} needs a root directory")
    elif needs_root and not is_dir(r.data.root):
        errors.append(f"{p}data.root: directory not found: {r.data.root}")
    if r.data.name == "synthetic" and len(r.data.synthetic_shape) not in (3, 4):
        errors.append(f"{p}data.synthetic_shape: expected [C, H, W] or [C, T, H, W] of positive sizes")
    elif r.data.name == "synthetic" and r.data.synthetic_samples * math.prod(r.data.synthetic_shape) > SYNTHETIC_LIMIT:
        errors.append(
            f"{p}data.synthetic_samples: {r.data.synthetic_samples} samples of {r.data.synthetic_shape} exceed "
            f"{SYNTHETIC_LIMIT:,} values (4 GiB as float32)"
        )
    for name in r.export.precisions:
        if name not in PRECISIONS:
            errors.append(f"{p}export.precisions: expected values among {', '.join(PRECISIONS)}, got {name!r}")
    if not r.export.precisions:
        errors.append(f"{p}export.precisions: expected at least one precision")
    for name in r.bench.backends:
        if name not in BACKENDS:
            errors.append(f"{p}bench.backends: expected values among {', '.join(BACKENDS)}, got {name!r}")
    if not r.bench.batches:
        errors.append(f"{p}bench.batches: expected a non-empty list of positive batch sizes, got {r.bench.batches}")
    if not r.trt.min_batch <= r.trt.opt_batch <= r.trt.max_batch:
        errors.append(
            f"{p}trt: expected min_batch <= opt_batch <= max_batch, got {r.trt.min_batch}, {r.trt.opt_batch}, {r.trt.max_batch}"
        )
    if r.regress.baseline and not is_file(r.regress.baseline):
        errors.append(f"{p}regress.baseline: file not found: {r.regress.baseline}")
    if r.prune.gamma_search and (r.prune.method != "cpli" or r.prune.scope != "blocks"):
        errors.append(
            f'{p}prune.gamma_search: needs prune.method = "cpli" and prune.scope = "blocks", got '
            f"{r.prune.method!r} and {r.prune.scope!r} (set prune.gamma_search = [] to use prune.gamma_rel)"
        )
    if r.run.dir and exists(r.run.dir) and not is_dir(r.run.dir):
        errors.append(f"{p}run.dir: {r.run.dir} exists and is not a directory")
    check_model_args(r, errors)


def recipe_from_text(text: str, source: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Validate recipe text as if read from `source` (paths resolve against its folder)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:
        raise UsageError(f"{source}: not valid TOML: tables nested too deeply") from None
    raw = merge(raw, overrides or {})
    errors: list[str] = []
    sections = validate_table(raw, source, errors)
    recipe = Recipe(source=source, **sections)
    if not recipe.run.name:
        recipe.run.name = name_from_stem(source.stem)
    if not errors:
        cross_check(recipe, errors)
    if errors:
        raise UsageError("invalid recipe:\n  " + "\n  ".join(errors))
    return recipe


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file; raises UsageError (exit 2) listing every problem."""
    try:
        source = Path(path).expanduser().resolve()
    except RuntimeError as e:  # a symlink loop, or ~user for a user that does not exist
        raise UsageError(f"{path}: cannot resolve the recipe's path ({first_line(e)})") from None
    if not exists(str(source)):
        raise UsageError(f"{path}: recipe file not found")
    regular_input(source, "recipe")  # a FIFO would block the read
    try:
        text = source.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark (Windows editors) is no error
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read recipe: {e}") from None
    return recipe_from_text(text, source, overrides)
