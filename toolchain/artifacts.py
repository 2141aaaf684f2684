"""Self-describing model artifacts: architecture, its arguments, the pruning plan and the weights in one file.

An artifact loads with weights-only deserialization and without the dense checkpoint: the architecture
is rebuilt from the registry, then every conv/BN/linear whose saved shape differs is resized to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolchain.errors import UsageError
from toolchain.io import atomic_write, safe_load
from toolchain.models import create_model
from toolchain.recipe import Recipe
from toolchain.rundir import RunDir

FORMAT = "cplitool-artifact/1"
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class ModelInfo:
    """What an artifact says about its model, apart from the weights."""

    arch: str
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # pruning plan: widths per layer, method, targets
    metrics: dict[str, Any] = field(default_factory=dict)


def save_artifact(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "arch": info.arch,
        "num_classes": info.num_classes,
        "kwargs": info.kwargs,
        "plan": info.plan,
        "metrics": info.metrics,
        "state_dict": state,
    }
    return atomic_write(path, lambda p: torch.save(payload, p))


def _resized(m: Any, weight: torch.Tensor) -> nn.Module | None:
    """A fresh module of `m`'s type and settings but the saved weight's channel counts, or None if unchanged."""
    if tuple(m.weight.shape) == tuple(weight.shape):
        return None
    if isinstance(m, _CONVS):
        conv: Any = type(m)  # Conv1d/2d/3d share this signature; their stubs differ in tuple lengths
        return conv(
            weight.shape[1] * m.groups,
            weight.shape[0],
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            m.groups,
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
            new = _resized(m, state[key])
            if new is not None:
                parent_name, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """load_state_dict with a usage error that names the file and the first mismatches."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:4]]
        raise UsageError(f"{source}: checkpoint does not fit the architecture: {' '.join(lines)}") from None


def load_artifact(path: str | Path) -> tuple[nn.Module, ModelInfo]:
    """Rebuild the model saved by save_artifact, in eval mode on the CPU."""
    return artifact_from_payload(safe_load(path), path)


def artifact_from_payload(payload: dict[str, Any], path: str | Path) -> tuple[nn.Module, ModelInfo]:
    if payload.get("format") != FORMAT:
        raise UsageError(
            f"{path}: not a cplitool artifact (expected format {FORMAT!r}); a plain state_dict loads as "
            "model.checkpoint or through --artifact PATH with the recipe's architecture"
        )
    info = ModelInfo(payload["arch"], payload["num_classes"], payload["kwargs"], payload["plan"], payload["metrics"])
    model = fit_to_state_dict(create_model(info.arch, info.num_classes, **info.kwargs), payload["state_dict"])
    load_state(model, payload["state_dict"], path)
    return model.eval(), info


def extract_state_dict(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accept a plain state_dict, a training checkpoint ({'model'|'state_dict': ...}) or an artifact."""
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return state


def load_dense(arch: str, num_classes: int, kwargs: dict[str, Any], checkpoint: str | Path) -> nn.Module:
    """Build `arch` and load a user checkpoint into it (read-only: the file is never modified)."""
    return dense_from_payload(arch, num_classes, kwargs, safe_load(checkpoint), checkpoint)


def dense_from_payload(
    arch: str, num_classes: int, kwargs: dict[str, Any], payload: dict[str, Any], checkpoint: str | Path
) -> nn.Module:
    model = create_model(arch, num_classes, **kwargs)
    state = extract_state_dict(payload)
    if not state:
        raise UsageError(f"{checkpoint}: no tensors found (expected a state_dict)")
    load_state(model, state, checkpoint)
    return model.eval()


def model_info_from_recipe(recipe: Recipe) -> ModelInfo:
    return ModelInfo(recipe.model.name, recipe.model.num_classes, dict(recipe.model.kwargs))


def resolve_model(recipe: Recipe, run: RunDir, which: str) -> tuple[nn.Module, ModelInfo, Path]:
    """Load 'dense' (the recipe's checkpoint, else the trained artifact), a stage's artifact
    ('pruned', 'finetuned') or a file path; raises a usage error saying which command makes it."""
    makers = {
        "dense": ("train", "cplitool train"),
        "pruned": ("prune", "cplitool prune"),
        "finetuned": ("finetune", "cplitool finetune"),
    }
    if which == "dense" and recipe.model.checkpoint:
        model = load_dense(recipe.model.name, recipe.model.num_classes, recipe.model.kwargs, recipe.model.checkpoint)
        return model, model_info_from_recipe(recipe), Path(recipe.model.checkpoint)
    if which in makers:
        stage, command = makers[which]
        path = run.artifact(stage)
        if path is None:
            raise UsageError(f"no {which} model in {run.path}: run `{command} {recipe.source}` first")
    else:
        path = Path(which)
        if not path.is_file():
            raise UsageError(f"--artifact {which}: expected dense, pruned, finetuned or a file path")
        payload = safe_load(path)
        if payload.get("format") != FORMAT:  # a plain state_dict: the recipe says which architecture
            model = dense_from_payload(recipe.model.name, recipe.model.num_classes, recipe.model.kwargs, payload, path)
            return model, model_info_from_recipe(recipe), path
        model, info = artifact_from_payload(payload, path)
        return model, info, path
    model, info = load_artifact(path)
    return model, info, path
