"""Checkpoint layouts people actually have, loaded into a model read-only and weights-only.

A file may hold a plain state_dict, or nest it under a training script's key (`state_dict`, `model`,
`model_state_dict`, `net`, `model_ema`/`ema`); its keys may carry wrapper prefixes (`module.` from
DataParallel, `model.` from Lightning-style wrappers, `_orig_mod.` from torch.compile). The recipe's
model.key_map renames keys (regex -> replacement, in order) before the known prefixes are stripped, and a
run of prefixes is stripped only when that makes more keys match. When the keys still do not fit, the error is at
most six lines: counts and the first three of each kind of mismatch, and one hint that fits the case.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.progress import console

NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net", "model_ema", "ema")
PREFIXES = ("module.", "model.", "_orig_mod.")
SHOWN = 3  # mismatched keys listed per kind


@dataclass(frozen=True)
class CheckpointOptions:
    """The recipe's model.checkpoint_key and model.key_map."""

    key: str = ""
    key_map: dict[str, str] = field(default_factory=dict)


def _tensors(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _descend(obj: Mapping[str, Any], key: str) -> Any:
    """obj[key], or for a dotted key not present as such, obj[a][b]... (e.g. "model_ema.module")."""
    if key in obj:
        return obj[key]
    node: Any = obj
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _listing(obj: Mapping[str, Any]) -> str:
    keys = [str(k) for k in obj]
    return ", ".join(keys[:12]) + (f" (+{len(keys) - 12} more)" if len(keys) > 12 else "") if keys else "(none)"


def pick_state(obj: Mapping[str, Any], key: str, source: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint: `key` if given, else the first known nested key that holds
    tensors (one level of further nesting allowed), else the top level's tensors."""
    if key:
        found = _descend(obj, key)
        if not isinstance(found, Mapping) or not _tensors(found):
            raise UsageError(
                f"{source}: model.checkpoint_key = {key!r} holds no tensors; the file's top-level keys: {_listing(obj)}"
            )
        return _tensors(found)
    candidates = [k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)]
    for k in candidates:
        inner = obj[k]
        state = _tensors(inner) or next(
            (_tensors(inner[n]) for n in (*NESTED_KEYS, "module") if isinstance(inner.get(n), Mapping)), {}
        )
        if state:
            others = [c for c in candidates if c != k]
            if others:
                note = f"{source}: loading the weights under {k!r} (also present: {', '.join(others)}; model.checkpoint_key chooses)"
                console.print(note, markup=False, highlight=False)
            return state
    top = _tensors(obj)  # a plain state_dict (a nested one wins over stray top-level tensors such as best_acc)
    if top:
        return top
    raise UsageError(
        f"{source}: no tensors found (expected a state_dict, or one under {', '.join(NESTED_KEYS)}); the file's "
        f"top-level keys: {_listing(obj)}; set model.checkpoint_key to the one that holds the weights"
    )


def tensor_dict(obj: Any, path: str | Path, what: str = "state_dict") -> dict[str, torch.Tensor]:
    """`obj` as {str: Tensor}, or a usage error saying what in the file is not that."""
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: {what} is a {type(obj).__name__}, expected a dict of tensors")
    bad_key = next((k for k in obj if not isinstance(k, str)), None)
    if bad_key is not None:
        raise UsageError(f"{path}: {what} has a non-string key {bad_key!r}; expected parameter names")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise UsageError(f"{path}: no tensors found in {what} (expected a state_dict)")
    odd = next((k for k, v in state.items() if v.is_sparse or v.is_quantized or v.is_complex()), None)
    if odd is not None:
        raise UsageError(f"{path}: {what}[{odd!r}] is a {state[odd].layout}/{state[odd].dtype} tensor, expected dense")
    empty = next((k for k, v in state.items() if v.is_meta), None)
    if empty is not None:
        raise UsageError(
            f"{path}: {what}[{empty!r}] is a meta tensor (a shape without data): saved before loading weights?"
        )
    return state


def rename(state: Mapping[str, torch.Tensor], key_map: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Apply each (regex, replacement) of model.key_map to every key, in order."""
    out = dict(state)
    for pattern, repl in key_map.items():
        regex = re.compile(pattern)
        out = {regex.sub(repl, k): v for k, v in out.items()}
    return out


def strip_prefixes(state: dict[str, torch.Tensor], wanted: Iterable[str]) -> dict[str, torch.Tensor]:
    """Strip the run of module./model./_orig_mod. prefixes (up to three deep, e.g. `module._orig_mod.`)
    that makes the most keys match `wanted`; keys stay as they are when no run makes more of them match."""
    wanted = set(wanted)
    best, best_hits = state, len(wanted & state.keys())
    for depth in (1, 2, 3):
        for chain in map("".join, itertools.product(PREFIXES, repeat=depth)):
            trial = {k.removeprefix(chain): v for k, v in state.items()}
            if len(trial) == len(state) and (hits := len(wanted & trial.keys())) > best_hits:
                best, best_hits = trial, hits
    return best


def fit_keys(
    state: Mapping[str, torch.Tensor], model: nn.Module, options: CheckpointOptions
) -> dict[str, torch.Tensor]:
    """The file's tensors under the model's key names, as far as key_map and prefix stripping get them."""
    return strip_prefixes(rename(state, options.key_map), model.state_dict().keys())


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _first(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def _root(key: str) -> str:
    return key.split(".", 1)[0] + "."


def _segment_rename(unexpected: list[str], missing: list[str]) -> tuple[int, str, str] | None:
    """The single-segment rename (position, file's, model's) that explains the most key pairs."""
    by_shape: dict[int, list[list[str]]] = {}
    for m in missing:
        by_shape.setdefault(m.count("."), []).append(m.split("."))
    votes: Counter[tuple[int, str, str]] = Counter()
    for u in unexpected:
        us = u.split(".")
        for ms in by_shape.get(len(us) - 1, []):
            diff = [i for i, (a, b) in enumerate(zip(us, ms, strict=True)) if a != b]
            if len(diff) == 1:
                votes[(diff[0], us[diff[0]], ms[diff[0]])] += 1
    return votes.most_common(1)[0][0] if votes else None


def _nesting(unexpected: list[str], model: Mapping[str, torch.Tensor]) -> str | None:
    """The prefix of up to three segments (`module.backbone.`) whose removal makes at least half of the
    file's unexpected keys the model's; the shortest such prefix."""
    for depth in (1, 2, 3):
        prefixes = dict.fromkeys(".".join(u.split(".")[:depth]) + "." for u in unexpected if u.count(".") > depth)
        for extra in prefixes:
            if sum(u.removeprefix(extra) in model for u in unexpected) >= len(unexpected) / 2:
                return extra
    return None


def hint(
    file: Mapping[str, torch.Tensor],
    model: Mapping[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    wrong: list[str],
    name: str,
) -> str:
    """One line saying what most likely went wrong and which recipe key fixes it."""
    if wrong and not missing and not unexpected:
        last = list(model)[-1].rsplit(".", 1)[0]  # the classifier is the model's last layer
        if all(k.rsplit(".", 1)[0] == last for k in wrong):
            return f"the file's `{last}` has {file[wrong[0]].shape[0]} outputs: set model.num_classes to match"
        return "same layers, other widths: check model.kwargs (a width setting?); a pruned cplitool artifact loads with --artifact"
    if unexpected and missing:
        extra = _nesting(unexpected, model)  # the file nests the model under a prefix of its own
        if extra:
            return f"the file's keys carry a `{extra}` prefix: set model.key_map = {{ '^{re.escape(extra)}' = '' }}"
        matched = len(model) - len(missing)
        if matched < len(model) / 2:
            f_root, m_root = _root(unexpected[0]), _root(missing[0])
            if ":" not in name:  # a registered name: the user's own class is the likely fix
                return (
                    f"the file's keys start with `{f_root}`, the model's with `{m_root}`: is this your own "
                    "architecture? use model.name = 'module:Class'"
                )
            return (
                f"the file's keys start with `{f_root}`, the model's with `{m_root}`: saved from another architecture? "
                "else rename keys with model.key_map (regex = replacement)"
            )
        seg = _segment_rename(unexpected, missing)
        if seg:
            pos, old, new = seg
            rule = f"'^{re.escape(old)}\\.' = '{new}.'" if pos == 0 else f"'\\.{re.escape(old)}\\.' = '.{new}.'"
            return f"rename keys with model.key_map = {{ {rule} }}"
    if missing and not unexpected:
        return "the file lacks some of the model's weights: a backbone-only checkpoint, or other model.kwargs?"
    return "check model.name and model.kwargs against the code that saved the file, or rename keys with model.key_map"


def mismatch(
    file: Mapping[str, torch.Tensor], model: Mapping[str, torch.Tensor], source: str | Path, name: str
) -> str | None:
    """The mismatch report (at most six lines), or None when `file` fits `model` exactly."""
    missing = [k for k in model if k not in file]
    unexpected = [k for k in file if k not in model]
    wrong = [k for k in model if k in file and file[k].shape != model[k].shape]
    if not (missing or unexpected or wrong):
        return None
    counts = ", ".join(
        f"{len(keys)} {what}" for keys, what in ((missing, "missing"), (unexpected, "unexpected"), (wrong, "wrongly shaped"))
        if keys
    )  # fmt: skip
    lines = [f"{source}: checkpoint does not fit the architecture {name!r}: {counts} key(s)"]
    if missing:
        lines.append(f"  missing (in the model, not the file): {_first(missing)}")
    if unexpected:
        lines.append(f"  unexpected (in the file, not the model): {_first(unexpected)}")
    if wrong:
        shapes = [f"{k} (file {_shape(file[k])}, model {_shape(model[k])})" for k in wrong]
        lines.append(f"  wrongly shaped: {_first(shapes)}")
    lines.append(f"  hint: {hint(file, model, missing, unexpected, wrong, name)}")
    return "\n".join(lines)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path, name: str) -> nn.Module:
    """Copy `state` into `model` exactly (strict), or raise the mismatch report as a usage error.

    BatchNorm's num_batches_tracked counters that old checkpoints lack are kept from the model.
    """
    own = model.state_dict()
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked") and k not in state}, **state}
    report = mismatch(state, own, source, name)
    if report:
        raise UsageError(report)
    typed = next((k for k, v in own.items() if v.is_floating_point() and not state[k].is_floating_point()), None)
    if typed is not None:  # load_state_dict would cast bool/int weights silently
        raise UsageError(
            f"{source}: {typed!r} holds {state[typed].dtype} values; the model's {typed!r} is {own[typed].dtype}: "
            "expected floating-point weights"
        )
    model.load_state_dict(state, strict=True)
    return model


def load_checkpoint(
    model: nn.Module, payload: Mapping[str, Any], source: str | Path, name: str, options: CheckpointOptions
) -> nn.Module:
    """Load a checkpoint's weights (read by `cplitool.toolchain.io.safe_load`) into `model`, whatever its layout."""
    state = fit_keys(tensor_dict(pick_state(payload, options.key, source), source), model, options)
    return load_into(model, state, source, name)
