"""Self-describing model artifacts: architecture, its arguments, the pruning plan and the weights in one file.

An artifact loads with weights-only deserialization and without the dense checkpoint: the architecture
is rebuilt from its source (a registered name, or an import path that the recipe in hand also names),
then every conv/BN/linear whose saved shape differs is resized to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.checkpoints import CheckpointOptions, load_checkpoint, load_into, tensor_dict
from cplitool.toolchain.errors import UsageError, first_line
from cplitool.toolchain.io import safe_load, save_torch
from cplitool.toolchain.models.source import ModelSource, is_import_path
from cplitool.toolchain.recipe import Recipe
from cplitool.toolchain.recipe.load import PARAM_LIMIT
from cplitool.toolchain.rundir import RunDir

FORMAT = "cplitool-artifact/1"
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class ModelInfo:
    """What an artifact says about its model, apart from the weights."""

    arch: str  # registered name or import path "package.module:callable"
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # pruning plan: widths per layer, method, targets
    metrics: dict[str, Any] = field(default_factory=dict)
    input_shape: list[int] = field(default_factory=list)  # one sample, as the recipe gave or the registry knows


def save_artifact(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "arch": info.arch,
        "num_classes": info.num_classes,
        "kwargs": info.kwargs,
        "plan": info.plan,
        "metrics": info.metrics,
        "input_shape": info.input_shape,
        "state_dict": state,
    }
    return save_torch(path, payload)


def _resized(m: Any, weight: torch.Tensor) -> nn.Module | None:
    """A fresh module of `m`'s type and settings but the saved weight's channel counts, or None if unchanged."""
    if tuple(m.weight.shape) == tuple(weight.shape):
        return None
    if isinstance(m, _CONVS):
        conv: Any = type(m)  # Conv1d/2d/3d share this signature; their stubs differ in tuple lengths
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        groups = weight.shape[0] if depthwise else m.groups  # a pruned depthwise conv stays depthwise
        return conv(
            weight.shape[1] * groups,
            weight.shape[0],
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            groups,
            m.bias is not None,
            m.padding_mode,
        )
    if isinstance(m, _NORMS):
        return type(m)(weight.shape[0], m.eps, m.momentum, m.affine, m.track_running_stats)
    if isinstance(m, nn.Linear):
        return nn.Linear(weight.shape[1], weight.shape[0], m.bias is not None)
    return None


def fit_to_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Resize the model's conv/BN/linear modules to the widths found in `state` (a pruned model's weights)."""
    for name, m in list(model.named_modules()):
        key = f"{name}.weight" if name else "weight"
        if isinstance(m, (*_CONVS, *_NORMS, nn.Linear)) and key in state:
            if state[key].dim() != m.weight.dim():
                raise ValueError(f"{key} has shape {tuple(state[key].shape)}, expected {m.weight.dim()} dimensions")
            new = _resized(m, state[key])
            if new is not None:
                parent_name, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def load_artifact(path: str | Path, trusted: ModelSource | None = None) -> tuple[nn.Module, ModelInfo]:
    """Rebuild the model saved by save_artifact, in eval mode on the CPU (`trusted`: see `artifact_source`)."""
    return artifact_from_payload(safe_load(path), path, trusted)


def artifact_source(info: ModelInfo, path: str | Path, trusted: ModelSource | None) -> ModelSource:
    """The source to rebuild an artifact from. An import path is imported only when `trusted` (the recipe's
    source) names the same one: the file alone never chooses which code runs."""
    if is_import_path(info.arch) and (trusted is None or trusted.name != info.arch):
        named = f"the recipe's model.name is {trusted.name!r}" if trusted else "no recipe names it"
        raise UsageError(
            f"{path}: built from the import path {info.arch!r} but {named}; cplitool imports only code a recipe "
            f"names: load it through a recipe with model.name = {info.arch!r}"
        )
    root = trusted.root if trusted else ""
    return ModelSource(info.arch, info.num_classes, dict(info.kwargs), tuple(info.input_shape), root)


def info_from_payload(payload: dict[str, Any], path: str | Path) -> ModelInfo:
    """The artifact's header, each field checked for type, so a crafted file cannot reach the model code."""
    fields = {"arch": str, "num_classes": int, "kwargs": dict, "plan": dict, "metrics": dict, "input_shape": list}
    for key, tp in fields.items():
        value = payload.get(key)
        if value is None and key in ("arch", "num_classes"):
            raise UsageError(f"{path}: artifact has no {key!r}; it was not written by cplitool")
        if value is not None and (not isinstance(value, tp) or isinstance(value, bool)):
            raise UsageError(f"{path}: artifact {key!r} is a {type(value).__name__}, expected {tp.__name__}")
    if payload["num_classes"] < 1:
        raise UsageError(f"{path}: artifact num_classes is {payload['num_classes']}, expected a positive count")
    kwargs = payload.get("kwargs") or {}
    if any(not isinstance(k, str) for k in kwargs):
        raise UsageError(f"{path}: artifact kwargs have a non-string key")
    shape = payload.get("input_shape") or []  # artifacts before import paths lack it
    if any(not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 65536 for n in shape):
        raise UsageError(f"{path}: artifact input_shape {shape!r} is not a list of positive sizes")
    return ModelInfo(
        payload["arch"],
        payload["num_classes"],
        dict(kwargs),
        payload.get("plan") or {},
        payload.get("metrics") or {},
        list(shape),
    )


def build_fitted(source: ModelSource, state: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    """The source's model resized to the saved widths, after a shape-only trial on the meta device
    (a file whose widths do not chain, or a 1-D conv weight, is refused before any real memory is used)."""
    try:
        with torch.device("meta"):
            trial = source.build()
            params = sum(p.numel() for p in trial.parameters())
            if params > PARAM_LIMIT:  # it is built at this size before the saved widths shrink it
                raise UsageError(
                    f"artifact num_classes {source.num_classes} and kwargs {source.kwargs} make {params:,} "
                    "parameters (too large)"
                )
            trial = fit_to_state_dict(trial, state)
            check_shapes(trial, state, path)
            if source.input_shape or not source.imported:  # an import path saved without a shape: no trial input
                trial.eval()(torch.empty(1, *source.shape()))
    except UsageError as e:
        raise UsageError(f"{path}: {str(e).removeprefix(f'{path}: ')}") from None
    except Exception as e:  # any failure of the trial means the file's shapes do not make this model
        raise UsageError(f"{path}: wrong shapes for {source.name!r}: {first_line(e)}") from None
    return fit_to_state_dict(source.build(), state)


def check_shapes(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Every parameter and buffer present with the saved shape: then building the real model takes no
    more memory than the file's own tensors, whatever its header claims."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and tuple(state[k].shape) != want[k]]
    if missing or extra or wrong:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else ""]
        parts += [f"{k} is {tuple(state[k].shape)}, expected {want[k]}" for k in wrong[:2]]
        raise UsageError(f"{path}: checkpoint does not fit the architecture: {'; '.join(p for p in parts if p)}")


def artifact_from_payload(
    payload: dict[str, Any], path: str | Path, trusted: ModelSource | None = None
) -> tuple[nn.Module, ModelInfo]:
    if payload.get("format") != FORMAT:
        raise UsageError(
            f"{path}: not a cplitool artifact (expected format {FORMAT!r}); a plain state_dict loads as "
            "model.checkpoint or through --artifact PATH with the recipe's architecture"
        )
    info = info_from_payload(payload, path)
    state = tensor_dict(payload.get("state_dict"), path)
    model = build_fitted(artifact_source(info, path, trusted), state, path)
    load_into(model, state, path, info.arch)
    return model.eval(), info


def checkpoint_options(recipe: Recipe) -> CheckpointOptions:
    return CheckpointOptions(recipe.model.checkpoint_key, dict(recipe.model.key_map))


def load_dense(source: ModelSource, checkpoint: str | Path, options: CheckpointOptions | None = None) -> nn.Module:
    """Build the source's model and load a user checkpoint into it (read-only: the file is never modified)."""
    return dense_from_payload(source, safe_load(checkpoint), checkpoint, options or CheckpointOptions())


def check_dense(recipe: Recipe) -> None:
    """Raise what prune would say about the recipe's model.checkpoint, building the model on the meta device
    (no memory for its weights): `cplitool check` reports a checkpoint that does not fit."""
    import warnings

    checkpoint = recipe.model.checkpoint
    payload = safe_load(checkpoint)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copying into meta parameters is a no-op, as intended here
        dense_from_payload(ModelSource.of(recipe), payload, checkpoint, checkpoint_options(recipe))


def dense_from_payload(
    source: ModelSource, payload: dict[str, Any], checkpoint: str | Path, options: CheckpointOptions
) -> nn.Module:
    return load_checkpoint(source.build(), payload, checkpoint, source.name, options).eval()


def model_info_from_recipe(recipe: Recipe) -> ModelInfo:
    source = ModelSource.of(recipe)
    return ModelInfo(source.name, source.num_classes, dict(source.kwargs), input_shape=list(source.shape()))


def resolve_model(recipe: Recipe, run: RunDir, which: str) -> tuple[nn.Module, ModelInfo, Path]:
    """Load 'dense' (the recipe's checkpoint, else the trained artifact), a stage's artifact
    ('pruned', 'finetuned') or a file path; raises a usage error saying which command makes it."""
    makers = {
        "dense": ("train", "cplitool train"),
        "pruned": ("prune", "cplitool prune"),
        "finetuned": ("finetune", "cplitool finetune"),
    }
    source = ModelSource.of(recipe)
    if which == "dense" and recipe.model.checkpoint:
        model = load_dense(source, recipe.model.checkpoint, checkpoint_options(recipe))
        return model, model_info_from_recipe(recipe), Path(recipe.model.checkpoint)
    if which in makers:
        stage, command = makers[which]
        path = run.artifact(stage)
        if path is None:
            if which == "dense":  # two ways forward: the user's own trained weights, or training here
                raise UsageError(
                    f"no dense model for {recipe.source}: set model.checkpoint = PATH in the recipe (your trained "
                    f"weights: state_dict .pt/.pth, .safetensors or a cplitool artifact), or run `{command} "
                    f"{recipe.source}` to train one (train.epochs = {recipe.train.epochs})"
                )
            raise UsageError(f"no {which} model in {run.path}: run `{command} {recipe.source}` first")
    else:
        path = Path(which)
        if not path.is_file():
            raise UsageError(f"--artifact {which}: expected dense, pruned, finetuned or a file path")
        payload = safe_load(path)
        if payload.get("format") != FORMAT:  # a plain state_dict: the recipe says which architecture
            model = dense_from_payload(source, payload, path, checkpoint_options(recipe))
            return model, model_info_from_recipe(recipe), path
        model, info = artifact_from_payload(payload, path, source)
        return model, info, path
    model, info = load_artifact(path, source)
    return model, info, path
