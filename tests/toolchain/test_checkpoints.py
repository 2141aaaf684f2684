"""Checkpoint layouts people actually have: nested keys, wrapper prefixes, key_map, safetensors, and the
short mismatch report with a hint that fits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from cplitool.toolchain.artifacts import load_dense
from cplitool.toolchain.checkpoints import CheckpointOptions, load_checkpoint, pick_state, rename, strip_prefixes
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.models import create_model
from cplitool.toolchain.models.source import ModelSource
from tests.conftest import REPO

X = torch.randn(2, 1, 8, 8)


def trained_like(seed: int) -> torch.nn.Module:
    """quick_vgg with seeded weights and non-trivial BN statistics, so a lost tensor shows in the output."""
    torch.manual_seed(seed)
    model = create_model("quick_vgg").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def loads_as(path: Path, reference: torch.nn.Module, options: CheckpointOptions | None = None) -> None:
    before = path.read_bytes()
    loaded = load_dense(ModelSource("quick_vgg"), path, options)
    with torch.no_grad():
        assert torch.equal(loaded(X), reference(X)), path.name
    assert path.read_bytes() == before  # the user's file is never modified


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


LAYOUTS: dict[str, Callable[[dict[str, torch.Tensor]], Any]] = {
    "plain": lambda s: s,
    "state_dict": lambda s: {"epoch": 90, "best_acc1": torch.tensor(71.2), "state_dict": s},
    "model": lambda s: {"model": s, "optimizer": {"state": {}, "param_groups": []}},
    "model_state_dict": lambda s: {"epoch": 3, "model_state_dict": s, "optimizer_state_dict": {}},
    "net": lambda s: {"net": s, "acc": 93.1},
    "model_ema": lambda s: {"model_ema": s},
    "ema": lambda s: {"ema": {"module": s}, "updates": 100},  # nested once more, as some EMA helpers save
    "DataParallel": lambda s: {"state_dict": prefixed(s, "module.")},
    "Lightning-style": lambda s: {"state_dict": prefixed(s, "model.")},
    "torch.compile": lambda s: prefixed(s, "_orig_mod."),
    "DDP of compiled": lambda s: prefixed(s, "module._orig_mod."),
}


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_every_layout_loads_read_only(layout: str, tmp_path: Path) -> None:
    model = trained_like(1)
    torch.save(LAYOUTS[layout](model.state_dict()), tmp_path / "ckpt.pth")
    loads_as(tmp_path / "ckpt.pth", model)


def test_safetensors_with_a_prefix(tmp_path: Path) -> None:
    model = trained_like(2)
    save_file(prefixed(model.state_dict(), "module."), str(tmp_path / "m.safetensors"))
    loads_as(tmp_path / "m.safetensors", model)


def test_checkpoint_key_chooses_among_several(tmp_path: Path) -> None:
    raw, ema = trained_like(3), trained_like(4)
    torch.save({"model": raw.state_dict(), "model_ema": ema.state_dict()}, tmp_path / "both.pt")
    loads_as(tmp_path / "both.pt", raw)  # the first known key by default
    loads_as(tmp_path / "both.pt", ema, CheckpointOptions(key="model_ema"))
    torch.save({"ema": {"module": ema.state_dict()}}, tmp_path / "deep.pt")
    loads_as(tmp_path / "deep.pt", ema, CheckpointOptions(key="ema.module"))  # a dotted path descends


def test_no_weights_found_lists_the_top_level_keys() -> None:
    payload = {"epoch": 3, "weights": {"fc.weight": torch.zeros(2, 2)}, "optimizer": {}}
    with pytest.raises(
        UsageError,
        match=r"f.pt: no tensors found .* top-level keys: epoch, weights, optimizer; set model.checkpoint_key",
    ):
        pick_state(payload, "", "f.pt")
    assert set(pick_state(payload, "weights", "f.pt")) == {"fc.weight"}
    with pytest.raises(
        UsageError, match=r"model.checkpoint_key = 'model' holds no tensors; the file's top-level keys: epoch, weights"
    ):
        pick_state(payload, "model", "f.pt")


def test_key_map_applies_in_order_before_prefix_stripping(tmp_path: Path) -> None:
    """Swapping the two rules (or stripping before renaming) leaves `blocks.` keys and fails the load."""
    t = torch.zeros(1)
    assert rename({"a.w": t}, {"^a": "b", "^b": "c"}) == {"c.w": t}
    assert rename({"a.w": t}, {"^b": "c", "^a": "b"}) == {"b.w": t}
    model = trained_like(5)
    state = {("module." + k).replace("features.", "blocks."): v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "renamed.pt")
    loads_as(tmp_path / "renamed.pt", model, CheckpointOptions(key_map={r"^module\.blocks\.": "module.features."}))


def test_prefixes_are_stripped_only_when_that_makes_keys_match() -> None:
    """A model whose own submodule is called `model` keeps its `model.` keys (stripping always would break it)."""
    t = torch.zeros(1)
    wrapper_keys = ["model.conv.weight", "head.weight"]
    assert strip_prefixes({"model.conv.weight": t, "head.weight": t}, wrapper_keys).keys() == set(wrapper_keys)
    assert strip_prefixes({"module.model.conv.weight": t, "module.head.weight": t}, wrapper_keys).keys() == set(
        wrapper_keys
    )


def test_old_checkpoints_without_num_batches_tracked_load(tmp_path: Path) -> None:
    model = trained_like(6)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt")
    loads_as(tmp_path / "old.pt", model)


def report_of(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> str:
    with pytest.raises(UsageError) as e:
        load_checkpoint(model, {"state_dict": state}, "ckpt.pth", name, CheckpointOptions())
    text = str(e.value)
    assert len(text.splitlines()) <= 6, text
    return text


def user_resnet20(num_classes: int = 10) -> torch.nn.Module:
    return ModelSource("cifar_resnet:ResNet20", num_classes, root=str(REPO / "benchmarks" / "user_models")).build()


def test_a_foreign_architecture_gets_counts_first_three_and_the_own_code_hint() -> None:
    state = prefixed(user_resnet20().state_dict(), "module.")
    text = report_of(create_model("resnet20"), state, "resnet20")
    first, missing, unexpected, hint = text.splitlines()
    assert first == "ckpt.pth: checkpoint does not fit the architecture 'resnet20': 90 missing, 120 unexpected key(s)"
    assert missing.strip() == (
        "missing (in the model, not the file): layers.0.conv1.weight, layers.0.bn1.weight, layers.0.bn1.bias, ... (+87 more)"
    )
    assert "unexpected (in the file, not the model): layer1.0.conv1.weight, layer1.0.bn1.weight," in unexpected
    assert hint.strip() == (
        "hint: the file's keys start with `layer1.`, the model's with `layers.`: is this your own architecture? "
        "use model.name = 'module:Class'"
    )


def test_hints_for_classes_prefixes_and_renamed_layers() -> None:
    state = user_resnet20().state_dict()
    classes = report_of(user_resnet20(100), state, "cifar_resnet:ResNet20")
    assert "2 wrongly shaped key(s)" in classes
    assert "fc.weight (file 10x64, model 100x64), fc.bias (file 10, model 100)" in classes
    assert "hint: the file's `fc` has 10 outputs: set model.num_classes to match" in classes
    nested = report_of(user_resnet20(), prefixed(state, "backbone."), "cifar_resnet:ResNet20")
    assert r"hint: the file's keys carry a `backbone.` prefix: set model.key_map = { '^backbone\.' = '' }" in nested
    renamed = {k.replace("downsample", "shortcut"): v for k, v in state.items()}
    rename_hint = report_of(user_resnet20(), renamed, "cifar_resnet:ResNet20")
    assert r"hint: rename keys with model.key_map = { '\.shortcut\.' = '.downsample.' }" in rename_hint
    staged = {k.replace("layer1.", "stage1."): v for k, v in state.items()}
    first_segment = report_of(user_resnet20(), staged, "cifar_resnet:ResNet20")
    assert r"hint: rename keys with model.key_map = { '^stage1\.' = 'layer1.' }" in first_segment
    fixed = user_resnet20()  # and the suggested key_map does load it
    load_checkpoint(fixed, renamed, "ckpt.pth", "x", CheckpointOptions(key_map={r"\.shortcut\.": ".downsample."}))
    assert torch.equal(fixed.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])
